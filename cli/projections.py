"""`payments projections`: run the projection runner alone, or rebuild read models."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress, TextColumn

from bootstrap.composition import Container, build
from cli.common import MetricsHost, MetricsPort, build_or_exit, load_settings, run_until_signal
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
def rebuild(name: NameArgument = None) -> None:
    """Rebuild read models from the event store, without serving wrong data meanwhile."""
    if name is not None and name not in NAMES:
        raise typer.BadParameter(f"must be one of {', '.join(NAMES)}", param_hint="NAME")
    container = build(load_settings(), with_psp=False)
    try:
        for projection_name in [name] if name else list(NAMES):
            _rebuild_one(container, projection_name)
    finally:
        container.close()


def _rebuild_one(container: Container, name: str) -> None:
    timing = container.app.config.timing
    live = next(p for p in all_projections(timing) if p.name == name)
    copy = next(p for p in all_projections(timing, rebuilding.SUFFIX) if p.name == name)
    with container.db.read() as tx:
        total = container.runner.log.count_after(tx, 0)
    columns = (*Progress.get_default_columns(), TextColumn("{task.completed} events"))
    with Progress(*columns) as bar:
        task = bar.add_task(f"rebuilding {name}", total=total)
        applied = rebuilding.rebuild(
            container.db, container.runner.log, live, copy, lambda n: bar.advance(task, n)
        )
        bar.update(task, completed=applied, total=max(total, applied))
    typer.echo(f"{name}: rebuilt from {applied} events")
