"""`projection_quarantine`: orders a read model could not apply, set aside so the rest flows.

When a read model fails on one order's events (text PostgreSQL refuses, an event that no
longer decodes, a bug), the runner records the order here, for that read model, and goes
on with every other order; later events of that order skip that read model until it is
rebuilt (`payments projections rebuild NAME`, after the fix), which retries them all. The
dashboard lists quarantined orders and the audit fails while any remain. The one owner of
the table's SQL.
"""

from __future__ import annotations

import time
from typing import Any

from adapters.db import Database, Tx

CREATE = (
    "CREATE TABLE IF NOT EXISTS projection_quarantine (projection TEXT NOT NULL, "
    "order_id TEXT NOT NULL, position BIGINT NOT NULL, error TEXT NOT NULL, "
    "at DOUBLE PRECISION NOT NULL, PRIMARY KEY (projection, order_id))"
)


def create(tx: Tx) -> None:
    tx.execute(CREATE)


def held(tx: Tx) -> set[tuple[str, str]]:
    """(projection, order id) of every quarantined order (normally none)."""
    return {(p, o) for p, o in tx.execute("SELECT projection, order_id FROM projection_quarantine")}


def add(tx: Tx, projection: str, order_id: str, position: int, error: str) -> None:
    """Set an order aside for a projection (once; the first failure is kept)."""
    tx.execute(
        "INSERT INTO projection_quarantine (projection, order_id, position, error, at) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (projection, order_id) DO NOTHING",
        (projection, order_id, position, error, time.time()),
    )


def rows(db: Database) -> list[dict[str, Any]]:
    """Every quarantined order, newest first, for the dashboard and the audit."""
    found = db.one(
        "SELECT projection, order_id, position, error, at FROM projection_quarantine "
        "ORDER BY at DESC, projection, order_id"
    )
    keys = ("projection", "order_id", "position", "error", "at")
    return [dict(zip(keys, row, strict=True)) for row in found]


def clear(tx: Tx, projection: str) -> None:
    tx.execute("DELETE FROM projection_quarantine WHERE projection = %s", (projection,))


def take_over(tx: Tx, live: str, copy: str) -> None:
    """A rebuild swapped in: what its copy set aside replaces what the live one had."""
    clear(tx, live)
    tx.execute(
        "UPDATE projection_quarantine SET projection = %s WHERE projection = %s", (live, copy)
    )


def describe(error: BaseException) -> str:
    """A short, storable account of an error (never the data that caused it)."""
    text = f"{type(error).__name__}: {error}".replace("\x00", "\\x00")
    return text.encode("utf-8", "replace").decode("utf-8")[:300]
