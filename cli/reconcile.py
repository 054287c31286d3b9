"""`payments reconcile`: import the PSP's settlement report, match every row, list breaks."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from adapters.settlement_report import InvalidReport, parse
from app.reconciliation import CHANGED
from bootstrap.settlement import fetch_report
from cli.common import build_or_exit, load_settings
from domain.psp import PSPRejected


def reconcile(
    file: Annotated[Path | None, typer.Option(help="A settlement report (CSV) to import")] = None,
    start: Annotated[
        datetime | None, typer.Option("--from", help="Pull the report from (ISO 8601)")
    ] = None,
    end: Annotated[datetime | None, typer.Option("--to", help="...until (ISO 8601)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Import the PSP's settlement report (a file, or pulled from the PSP for the last three
    days), match every row to our orders and record the breaks; exit 1 while any break is
    open or a batch came back changed, 2 when the report cannot be read (nothing is imported
    then)."""
    settings = load_settings()
    started = time.perf_counter()
    try:
        data = (
            file.read_bytes() if file else fetch_report(settings, start, end or datetime.now(UTC))
        )
        rows = parse(data)
    except (InvalidReport, OSError, httpx.HTTPError, ValueError, PSPRejected) as error:
        typer.echo(f"cannot reconcile: {error}", err=True)
        raise typer.Exit(2) from None
    container = build_or_exit(settings, with_psp=False)
    try:
        imported = container.reconciliation.import_rows(settings.psp, rows)
        open_breaks = container.reconciliation.breaks("open")
    finally:
        container.close()
    seconds = time.perf_counter() - started
    result = _result(imported.__dict__, open_breaks, seconds)
    typer.echo(json.dumps(result, indent=2) if as_json else _text(result))
    for batch_id in imported.changed:
        typer.echo(f"batch {batch_id} {CHANGED}", err=True)
    if open_breaks or imported.changed:
        raise typer.Exit(1)


def _result(
    imported: dict[str, Any], open_breaks: list[dict[str, Any]], seconds: float
) -> dict[str, Any]:
    by_class: dict[str, int] = {}
    for found in open_breaks:
        by_class[found["class"]] = by_class.get(found["class"], 0) + 1
    return {
        "batches_new": imported["new"],
        "batches_already_imported": imported["known"],
        "batches_changed": imported["changed"],
        "rows": imported["rows"],
        "rows_matched": imported["matched"],
        "open_breaks_by_class": dict(sorted(by_class.items())),
        "open_breaks": [
            {k: found[k] for k in ("id", "class", "kind", "detail")} for found in open_breaks
        ],
        "seconds": round(seconds, 3),
    }


def _text(result: dict[str, Any]) -> str:
    lines = [
        f"batches imported: {len(result['batches_new'])} new, "
        f"{len(result['batches_already_imported'])} already imported (unchanged), "
        f"{len(result['batches_changed'])} changed since imported",
        f"rows: {result['rows']}, matched in new batches: {result['rows_matched']}",
        f"open breaks: {sum(result['open_breaks_by_class'].values())} "
        f"{result['open_breaks_by_class'] or ''}".rstrip(),
    ]
    lines += [
        f"  {b['id']}  {b['class']}  {b['kind']}: {b['detail']}" for b in result["open_breaks"]
    ]
    return "\n".join(lines)
