"""`payments audit`: replay everything, verify the invariants, exit non-zero on any violation."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Annotated
from uuid import UUID

import typer
from rich.progress import Progress

from adapters.db import STORE_ERRORS
from bootstrap import audit_pool, runtime
from bootstrap.audit_pool import helpers_for
from bootstrap.composition import Container
from bootstrap.settings import Settings
from cli.common import STOPPED, build_or_exit, exiting_on_sigterm, load_settings
from domain.reconciliation import SettlementBatch
from projections.audit import Auditor, summary, to_json
from projections.documents import order_document
from projections.log import EventLog
from projections.report import Report

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def audit(
    as_json: JsonOption = False,
    order: Annotated[str | None, typer.Option(help="Audit one order only")] = None,
    version: Annotated[int | None, typer.Option(help="...as it was at this version")] = None,
    at: Annotated[
        datetime | None, typer.Option(help="...as it was at this time (ISO 8601)")
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes to audit with (default: one per core on a large PostgreSQL store)",
        ),
    ] = None,
) -> None:
    """Replay every event, rebuild each order and the ledger, check the invariants and every
    read model; exit 1 on any violation."""
    settings = load_settings()
    with exiting_on_sigterm(STOPPED):  # its helpers stopped too
        if order is None:
            audit_pool.warm(settings, processes)  # helpers' imports overlap the build
        container = build_or_exit(settings, with_psp=False)
        auditor = Auditor(container.runner.log, container.app.config.timing)
        try:
            _require_tables(container)
            if order is not None:
                _audit_one(auditor, order, version, at, as_json)
                return
            report = _with_progress(
                auditor, settings, container.runner.log, processes, quiet=as_json
            )
            check_settlements(container.reconciliation.batches(), report)
        finally:
            container.close()
    typer.echo(to_json(report) if as_json else summary(report))
    if not report.ok:
        raise typer.Exit(1)


def _with_progress(
    auditor: Auditor, settings: Settings, log: EventLog, processes: int | None, *, quiet: bool
) -> Report:
    with log.db.read() as tx:
        total = log.count_after(tx, 0)
    helpers = helpers_for(settings, total, processes)
    with Progress(disable=quiet, transient=True) as bar, runtime.batch_heap():
        task = bar.add_task("auditing", total=total)
        return auditor.run(lambda n: bar.advance(task, n), helpers)


def _audit_one(
    auditor: Auditor, order: str, version: int | None, at: datetime | None, as_json: bool
) -> None:
    try:
        order_id = UUID(order)
        rebuilt, events = auditor.replay(order_id, version, at.timestamp() if at else None)
    except (ValueError, LookupError) as error:
        typer.echo(f"cannot audit that order: {error}", err=True)
        raise typer.Exit(2) from None
    document = order_document(rebuilt)
    if as_json:
        typer.echo(json.dumps({"order": document, "events": len(events)}, indent=2))
        return
    typer.echo(f"order {order_id} at version {rebuilt.version} ({len(events)} events):")
    typer.echo(
        f"  status {document['status']}, amount {document['amount']} {document['currency']}, "
        f"captured {document['captured_amount']}, refunded {document['refunded_amount']}"
    )
    for event in events:
        typer.echo(
            f"  v{event.originator_version:<3} {event.timestamp.isoformat()} {type(event).__name__}"
        )


def check_settlements(batches: list[SettlementBatch], report: Report) -> None:
    """Every settled batch's postings (replayed from its events) sum to zero per currency,
    and count in the replayed ledger, whose total stays zero."""
    for batch in batches:
        sums: dict[str, int] = defaultdict(int)
        for posting in batch.postings():
            sums[posting.currency] += posting.amount
            report.ledger[posting.account, posting.currency] += posting.amount
        report.checked["settlement_posting_sets_zero"] += 1
        if any(sums.values()):
            report.violate("settlement_posting_sets_zero", batch.batch_id, f"sums to {dict(sums)}")


def _require_tables(container: Container) -> None:
    """A clear message, not a traceback, for a store that was never migrated."""
    try:
        container.runner.lag()
    except (*STORE_ERRORS, RuntimeError):
        typer.echo("this store has no read-model tables: run `payments migrate` first", err=True)
        raise typer.Exit(2) from None
