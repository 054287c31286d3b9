"""The `payments` command line: serve, psp-sim, psp-proxy, worker, projections, migrate, audit,
chaos, openapi."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Annotated, Any, Literal

import typer
import uvicorn
from pydantic import SecretStr

from adapters.db import LOOP_READS, open_database
from api.main import ASYNC_WRITERS, create_app
from api.threaded_server import ThreadedServer
from bootstrap import logs, runtime
from bootstrap.composition import Container, build, read_side_pool
from bootstrap.migrate import migrate as run_migrations
from bootstrap.settings import Settings
from bootstrap.shared_counters import shared_directory
from cli.audit import audit
from cli.chaos import chaos
from cli.common import (
    MetricsHost,
    MetricsPort,
    build_or_exit,
    exiting_on_sigterm,
    load_settings,
    log,
    run_until_signal,
    serve_metrics,
)
from cli.projections import projections_cli
from cli.reconcile import reconcile
from domain.inputs import ascii_int
from psp.proxy import create_proxy
from psp.simulator import create_simulator

cli = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=__doc__,
    pretty_exceptions_enable=False,  # plain tracebacks, and never local variables (secrets)
)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    worker: Annotated[bool, typer.Option(help="Run the recovery worker in this process")] = True,
    projections: Annotated[bool, typer.Option(help="Run the projection runner here")] = True,
    workers: Annotated[
        str,
        typer.Option(
            help="HTTP server processes: 1 to 64, or 'auto' (one per core on PostgreSQL; "
            "one on SQLite, whose writers queue for one lock)"
        ),
    ] = "auto",
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Run the API (and, without PAYMENTS_PSP_URL, the PSP simulator in-process), with the
    recovery worker and the projection runner unless they run as their own processes."""
    settings = _checked_for_serving(load_settings(), host)
    processes = server_processes(workers, settings)
    run_migrations(settings)
    _check_connections(settings, processes)
    try:
        with _with_psp(settings, host, port) as with_psp:  # the simulator stops last
            settings = _with_public_url(with_psp, host, port)
            container = build(settings)
            try:
                # SIGTERM ends this block through its `finally`s (in one process uvicorn
                # drains, then hands the signal back); while closing, the one from before
                # is back.
                with exiting_on_sigterm():
                    serve_metrics(container, metrics_port, metrics_host)  # worker, runner
                    _run_server(container, settings, host, port, processes, worker, projections)
            finally:
                container.close()
    finally:
        log.info("stopped: the worker and the projection runner have finished")


def _run_server(
    container: Container,
    settings: Settings,
    host: str,
    port: int,
    processes: int,
    worker: bool,
    projections: bool,
) -> None:
    """Start this process's roles, then serve HTTP until uvicorn stops."""
    if projections:
        container.start_projections(listen_to_database=processes > 1)
    if worker:
        container.start_worker()
    app = "api.asgi:create" if processes > 1 else create_app(container)
    runtime.settle_heap()  # here, or in each child (api.asgi)
    # Children count into one directory, so a scrape of any gives every child's totals (the
    # script has set it already, for this process too: cli/launch.py).
    with shared_directory() if processes > 1 else nullcontext():
        uvicorn.run(
            app,
            host=host,
            port=port,
            workers=processes,
            factory=processes > 1,
            log_config=None,
            log_level="info",
            access_log=settings.access_log,
        )


def connections_needed(settings: Settings, processes: int) -> int:
    """The most PostgreSQL connections `serve` with `processes` HTTP processes may hold: each
    HTTP process's event store (DB_POOL_SIZE), read side, and event loop (reads and the
    checkouts' writes); with several, the parent's event store and read side again (its
    worker and projection runner) and the runner's listener."""
    stores = settings.db_pool_size + read_side_pool(settings)
    http = stores + LOOP_READS + ASYNC_WRITERS
    return http * processes + (stores + 1 if processes > 1 else 0)


def _check_connections(settings: Settings, processes: int) -> None:
    """Warn when `serve` may need more connections than the PostgreSQL server gives an
    ordinary user: past that, the server refuses them under load."""
    env = settings.event_store_env()
    if env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        return
    db = open_database(env, pool_size=1)
    try:
        sql = (
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
        )
        allowed = int(db.one(sql)[0][0])
    finally:
        db.close()
    needed = connections_needed(settings, processes)
    if needed > allowed:
        log.warning(
            "serve may open up to %d PostgreSQL connections (%d HTTP processes, "
            "PAYMENTS_DB_POOL_SIZE=%d) and the server allows %d: lower PAYMENTS_DB_POOL_SIZE "
            "or --workers, or raise max_connections (docs/runbook.md)",
            needed,
            processes,
            settings.db_pool_size,
            allowed,
        )


MAX_SERVER_PROCESSES = 64


def server_processes(workers: str, settings: Settings) -> int:
    """`--workers`: a number, or 'auto': one process per core on PostgreSQL (a checkout is
    bound by the CPU, and one process uses about one core), one on SQLite."""
    if workers == "auto":
        if settings.event_store_env()["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
            return 1
        return max(1, min(MAX_SERVER_PROCESSES, len(os.sched_getaffinity(0))))
    count = ascii_int(workers, low=1, high=MAX_SERVER_PROCESSES)
    if count is None:
        raise typer.BadParameter(
            f"must be 'auto' or a number from 1 to {MAX_SERVER_PROCESSES}", param_hint="--workers"
        )
    return count


@contextmanager
def _with_psp(settings: Settings, host: str, port: int) -> Iterator[Settings]:
    """Without PAYMENTS_PSP_URL, run the simulator in this process and point at it (and
    export both, so `--workers` children use the same simulator and webhook secret); it
    stops when the block ends. Left running, its uvicorn thread crashed the interpreter's
    exit now and then (SIGSEGV after a clean stop: 1 in 15-25 stops on a busy machine)."""
    if settings.psp_url or settings.psp == "stripe":
        yield settings
        return
    secret = settings.webhook_secret.get_secret_value() or secrets.token_urlsafe(32)
    webhook_url = f"http://{_loopback(host)}:{port}/v1/webhooks/psp"
    simulator = ThreadedServer(create_simulator(webhook_url, secret)).start()
    try:
        log.warning("PSP simulator running in-process at %s", simulator.url)
        os.environ["PAYMENTS_PSP_URL"] = simulator.url
        os.environ["PAYMENTS_WEBHOOK_SECRET"] = secret
        yield settings.model_copy(
            update={"psp_url": simulator.url, "webhook_secret": SecretStr(secret)}
        )
    finally:
        simulator.stop()


def _with_public_url(settings: Settings, host: str, port: int) -> Settings:
    """Without PAYMENTS_PUBLIC_URL, buyers come back from their bank to this server's own
    address (exported for `--workers` children), not to a default port it may not use."""
    if "PAYMENTS_PUBLIC_URL" in os.environ:
        return settings
    public_url = f"http://{_loopback(host)}:{port}"
    os.environ["PAYMENTS_PUBLIC_URL"] = public_url
    return settings.model_copy(update={"public_url": public_url})


@cli.command("psp-sim")
def psp_sim(
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8099,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    webhook_url: Annotated[str | None, typer.Option(help="Where to POST webhooks")] = None,
    webhooks: Annotated[
        str, typer.Option(help="'all' events, or only 'async' results (processing tokens)")
    ] = "all",
) -> None:
    """Run the PSP simulator; it signs webhooks with PAYMENTS_WEBHOOK_SECRET."""
    if webhooks not in ("all", "async"):
        raise typer.BadParameter("must be 'all' or 'async'", param_hint="--webhooks")
    mode: Literal["all", "async"] = "all" if webhooks == "all" else "async"
    secret = load_settings().webhook_secret.get_secret_value()
    try:
        app = create_simulator(webhook_url, secret, mode)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--webhook-url") from None
    _run_settled(app, host, port, log_level="warning")


@cli.command("psp-proxy")
def psp_proxy(
    upstream: Annotated[str, typer.Option(help="Base URL of the PSP to forward to")],
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8098,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
) -> None:
    """Run the simulator's fault engine as a reverse proxy in front of `--upstream`, with the
    simulator's /_control/faults API."""
    if not upstream.startswith(("http://", "https://")):
        raise typer.BadParameter("must be an http:// or https:// URL", param_hint="--upstream")
    app = create_proxy(upstream)
    _run_settled(app, host, port, log_level="warning", server_header=False, date_header=False)


def _run_settled(app: Any, host: str, port: int, **options: Any) -> None:
    """uvicorn.run for a stand-in for the PSP, its heap settled first as serve's is
    (bootstrap/runtime.py). The simulator keeps every payment it has seen: at 256 connections
    and a 300 ms latency its default collector spent about 100 µs per checkout, most of it
    a full collection of them all about every ten seconds; settled, about 10."""
    runtime.settle_heap()
    uvicorn.run(app, host=host, port=port, **options)


@cli.command()
def worker(metrics_port: MetricsPort = None, metrics_host: MetricsHost = "127.0.0.1") -> None:
    """Run the recovery worker alone (needs PAYMENTS_PSP_URL and migrated tables)."""
    run_until_signal(build_or_exit(load_settings()), "worker", metrics_port, metrics_host)


@cli.command()
def openapi() -> None:
    """Print the OpenAPI document (docs/openapi.json is this output)."""
    typer.echo(json.dumps(create_app(None).openapi(), indent=2, sort_keys=True))


@cli.command()
def migrate() -> None:
    """Create the tables once (safe to run from several processes at the same time)."""
    run_migrations(load_settings())
    typer.echo("migrations applied")


def _checked_for_serving(settings: Settings, host: str) -> Settings:
    if settings.development_mode:
        if not _is_loopback(host):
            typer.echo("refusing to listen beyond loopback without PAYMENTS_API_KEYS", err=True)
            raise typer.Exit(2)
        log.warning("DEVELOPMENT MODE: no PAYMENTS_API_KEYS set, authentication is OFF")
    elif not _webhook_secret(settings):
        name = (
            "PAYMENTS_STRIPE_WEBHOOK_SECRET"
            if settings.psp == "stripe"
            else "PAYMENTS_WEBHOOK_SECRET"
        )
        typer.echo(f"{name} is required when API keys are set", err=True)
        raise typer.Exit(2)
    if settings.psp == "stripe" and not settings.stripe_secret_key.get_secret_value():
        typer.echo("PAYMENTS_STRIPE_SECRET_KEY is required with PAYMENTS_PSP=stripe", err=True)
        raise typer.Exit(2)
    return settings


def _webhook_secret(settings: Settings) -> str:
    secret = settings.stripe_webhook_secret if settings.psp == "stripe" else settings.webhook_secret
    return secret.get_secret_value()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback(host: str) -> str:
    return host if _is_loopback(host) else socket.gethostname()


cli.add_typer(projections_cli, name="projections")
cli.command()(audit)
cli.command()(reconcile)
cli.command()(chaos)


def main() -> None:
    """Console-script entry point."""
    logs.configure(json_lines=os.environ.get("PAYMENTS_LOG_FORMAT", "json") != "text")
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
