"""`payments projections`: run the projection runner alone, or rebuild read models."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress, TextColumn

from bootstrap import audit_pool, runtime
from bootstrap.audit_pool import builders_for
from bootstrap.composition import build
from bootstrap.settings import Settings
from cli.common import (
    STOPPED,
    MetricsHost,
    MetricsPort,
    build_or_exit,
    exiting_on_sigterm,
    load_settings,
    run_until_signal,
)
from projections import rebuild as rebuilding
from projections.catalog import NAMES, all_projections

projections_cli = typer.Typer(help="Run the projection runner alone, or rebuild read models.")
NameArgument = Annotated[
    str | None, typer.Argument(help=f"One of {', '.join(NAMES)}; all when omitted")
]


@projections_cli.callback(invoke_without_command=True)
def projections(
    ctx: typer.Context, metrics_port: MetricsPort = None, metrics_host: MetricsHost = "127.0.0.1"
) -> None:
    """Follow the event log and keep every read model current (until SIGTERM)."""
    if ctx.invoked_subcommand is None:
        container = build_or_exit(load_settings(), with_psp=False)
        run_until_signal(container, "projections", metrics_port, metrics_host)


@projections_cli.command()
def rebuild(
    name: NameArgument = None,
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Processes building at once (PostgreSQL; default: one per core for 20,000 "
            "events or more, else one)",
        ),
    ] = None,
) -> None:
    """Rebuild read models from the event store, without serving wrong data meanwhile.
    Rebuilt together (no NAME), they share one pass over the store."""
    if name is not None and name not in NAMES:
        raise typer.BadParameter(f"must be one of {', '.join(NAMES)}", param_hint="NAME")
    settings = load_settings()
    names = [name] if name else list(NAMES)
    with exiting_on_sigterm(STOPPED):  # helpers stopped too; the next run resets the copies
        applied = _rebuild(settings, names, processes)
    typer.echo(f"{', '.join(names)}: rebuilt from {applied} events")


def _rebuild(settings: Settings, names: list[str], processes: int | None) -> int:
    """Rebuild `names` into copies and swap them in; the events applied."""
    audit_pool.warm(settings, processes)  # helpers' imports overlap the container's build
    container = build(settings, with_psp=False)
    try:
        timing = container.app.config.timing
        pairs = [
            (live, copy)
            for live, copy in zip(
                all_projections(timing), all_projections(timing, rebuilding.SUFFIX), strict=True
            )
            if live.name in names
        ]
        with container.db.read() as tx:
            total = container.runner.log.count_after(tx, 0)
        columns = (*Progress.get_default_columns(), TextColumn("{task.completed} events"))
        with Progress(*columns) as bar, runtime.batch_heap():
            task = bar.add_task(f"rebuilding {', '.join(names)}", total=total)
            applied = rebuilding.rebuild_all(
                container.db,
                container.runner.log,
                pairs,
                lambda n: bar.advance(task, n),
                builders_for(settings, total, processes),
            )
            bar.update(task, completed=applied, total=max(total, applied))
        return applied
    finally:
        container.close()
