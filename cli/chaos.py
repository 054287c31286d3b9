"""`payments chaos`: a seeded storm against a real multi-process stack on PostgreSQL."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from chaos.harness import ChaosReport, run
from chaos.stack import without_query
from cli.common import load_settings


def chaos(
    seed: Annotated[int, typer.Option(help="Seeds the fault schedule and the workload")] = 1,
    seeds: Annotated[int, typer.Option(help="Run this many seeds: seed, seed+1, ...")] = 1,
    orders: Annotated[int, typer.Option(help="How many checkouts the workload drives")] = 100,
    storm_s: Annotated[
        float | None, typer.Option(help="Seconds of disruptions (default: by orders)")
    ] = None,
    keep: Annotated[bool, typer.Option(help="Keep the stack's schema for inspection")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report")] = False,
    psp: Annotated[
        str, typer.Option(help="'simulator', or 'stripe' (localstripe behind payments psp-proxy)")
    ] = "simulator",
) -> None:
    """Start API, two workers, the projection runner and the simulator on PostgreSQL
    (PAYMENTS_DATABASE_URL, in a schema of their own), throw the seed's storm of faults and
    kills at a mixed workload, heal, then check the money; exit 1 on any violation."""
    settings = load_settings()
    if not settings.database_url.startswith("postgres"):
        typer.echo("payments chaos needs PAYMENTS_DATABASE_URL=postgresql://...", err=True)
        raise typer.Exit(2)
    say = (lambda _: None) if as_json else typer.echo
    reports = []
    for current in range(seed, seed + seeds):
        if psp not in ("simulator", "stripe"):
            raise typer.BadParameter("must be 'simulator' or 'stripe'", param_hint="--psp")
        url = without_query(settings.database_url)
        report = run(url, current, orders, storm_s, keep, say, psp)
        typer.echo(json.dumps(report.as_dict(), indent=2) if as_json else _summary(report))
        reports.append(report)
    if seeds > 1 and not as_json:
        passed = sum(r.ok for r in reports)
        typer.echo(f"{passed} of {seeds} seeds passed; {sum(r.orders for r in reports)} orders")
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def _summary(report: ChaosReport) -> str:
    data = report.as_dict()
    lines = [
        f"seed {data['seed']}: {data['orders']} orders in {data['seconds']} s",
        f"PSP faults injected: {data['psp_faults_injected']}",
        f"processes killed: {data['processes_killed']}; database cuts: {data['database_cuts']} "
        f"({data['connections_cut']} connections)",
    ]
    for check in data["checks"]:
        mark = "PASS" if check["ok"] else "FAIL"
        lines.append(f"{mark} {check['name']}: {check['figures']}")
    lines.append("OK" if report.ok else "VIOLATIONS FOUND")
    return "\n".join(lines)
