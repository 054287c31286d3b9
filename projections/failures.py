"""The failure log: every decline, outage, give-up and review, with its code and time.

Feeds the dashboard's failures by code and by hour and the PSP health panel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from adapters.db import Tx
from projections.base import OrderChange, Projection


def failure_of(event: Any) -> tuple[str, str, int, str, str] | None:
    """(kind, number, code, message) for an event that records a failure, else None."""
    kind = type(event).__name__
    if kind == "Declined":
        return ("authorize", "Declined", event.attempt, event.code, event.message)
    if kind == "PSPTimedOut":
        return (
            event.kind,
            kind,
            event.number,
            "psp_timeout",
            f"no answer in {event.elapsed_ms} ms",
        )
    if kind in ("PSPErrored", "CallFailed"):
        return (event.kind, kind, event.number, event.code, event.message)
    if kind == "SentToManualReview":
        return (event.kind, kind, event.number, event.reason.split(":", 1)[0], event.reason)
    return None


class FailuresProjection(Projection):
    name = "failures"
    tables: ClassVar[dict[str, str]] = {
        "failure_log": """
            CREATE TABLE IF NOT EXISTS {table} (
                order_id TEXT NOT NULL,
                version BIGINT NOT NULL,
                kind TEXT NOT NULL,
                event TEXT NOT NULL,
                number INTEGER NOT NULL,
                code TEXT NOT NULL,
                message TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (order_id, version)
            );
            CREATE INDEX IF NOT EXISTS {table}_by_time ON {table} (at, code)
        """,
    }

    def apply(self, tx: Tx, changes: Sequence[OrderChange]) -> None:
        rows = []
        for change in changes:
            for _, event in change.events:
                failure = failure_of(event)
                if failure:
                    at = event.timestamp.timestamp()
                    rows.append((str(change.order_id), event.originator_version, *failure, at))
        tx.append(
            self.t("failure_log"),
            ("order_id", "version", "kind", "event", "number", "code", "message", "at"),
            rows,
        )
