"""The work queue: for each order that owes the worker something, when to look next."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from adapters.db import Tx
from domain.worklist import Timing, next_due
from projections.base import OrderChange, Projection


class WorkQueueProjection(Projection):
    name = "work_queue"
    tables: ClassVar[dict[str, str]] = {
        "work_queue": """
            CREATE TABLE IF NOT EXISTS {table} (
                order_id TEXT PRIMARY KEY,
                due_at DOUBLE PRECISION NOT NULL,
                task TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS {table}_by_due ON {table} (due_at)
        """,
    }

    def __init__(self, timing: Timing, suffix: str = "") -> None:
        super().__init__(suffix)
        self.timing = timing

    def apply(self, tx: Tx, changes: Sequence[OrderChange]) -> None:
        upserts, done = [], []
        for change in changes:
            work = next_due(change.order, self.timing)
            if work is None:
                done.append(change.key)
            else:
                upserts.append((change.key, work.due_at.timestamp(), work.task.value))
        if not self.fresh:
            tx.delete_in(self.t("work_queue"), "order_id", done)
        self.write(
            tx,
            "work_queue",
            ("order_id", "due_at", "task"),
            upserts,
            "ON CONFLICT (order_id) DO UPDATE SET due_at = excluded.due_at, task = excluded.task",
        )


def due_orders(tx: Tx, now: float, limit: int) -> list[str]:
    """Ids of the orders whose work is due at `now`, most overdue first."""
    rows = tx.execute(
        "SELECT order_id FROM work_queue WHERE due_at <= %s ORDER BY due_at LIMIT %s", (now, limit)
    )
    return [str(r[0]) for r in rows]


def oldest_due_at(tx: Tx) -> float | None:
    """When the most overdue work fell due (unix seconds), None when nothing is queued."""
    rows = tx.execute("SELECT MIN(due_at) FROM work_queue")
    return float(rows[0][0]) if rows and rows[0][0] is not None else None
