"""The failure log: every decline, outage, give-up and review, with its code and time; and
the challenge log: each 3-D Secure challenge asked, completed, failed or abandoned.

Feeds the dashboard's failures by code and by hour, the PSP health panel and the
challenges panel (a bank's challenge page that is down shows as abandoned and failed
challenges piling up).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from adapters.db import Tx
from domain.order import PaymentOrder
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
    if kind in RECORDED:
        code, message = RECORDED[kind]
        return ("authorize", kind, event.attempt, code, message)
    return None


RECORDED = {
    "ChallengeAbandoned": (
        "challenge_abandoned",
        "the buyer did not confirm with their bank before the session ended",
    ),
    "HoldLapsed": ("authorization_expired", "the PSP's hold lapsed before the order was captured"),
}
"""Events that are a failure by themselves: their code and message."""
ASKED = {"ActionRequired": "required", "ChallengeAbandoned": "abandoned"}
ANSWERED = {"Declined": "failed", "Authorized": "completed", "Captured": "completed"}


def challenge_of(event: Any, order: PaymentOrder) -> tuple[int, str] | None:
    """(attempt, required | completed | failed | abandoned) for an event in a challenge's
    life, else None. An attempt was challenged if it ever had a challenge page."""
    kind = type(event).__name__
    if kind in ASKED:
        return (event.attempt, ASKED[kind])
    attempt = getattr(event, "attempt", None)
    if kind not in ANSWERED or attempt is None or getattr(event, "operation", None) is not None:
        return None
    return (attempt, ANSWERED[kind]) if order.attempt(attempt).action_url else None


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
        "challenge_log": """
            CREATE TABLE IF NOT EXISTS {table} (
                order_id TEXT NOT NULL,
                version BIGINT NOT NULL,
                attempt INTEGER NOT NULL,
                outcome TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (order_id, version)
            );
            CREATE INDEX IF NOT EXISTS {table}_by_time ON {table} (at, outcome)
        """,
    }

    def apply(self, tx: Tx, changes: Sequence[OrderChange]) -> None:
        rows, challenges = [], []
        for change in changes:
            for _, event in change.events:
                at = event.timestamp.timestamp()
                key = (change.key, event.originator_version)
                if failure := failure_of(event):
                    rows.append((*key, *failure, at))
                if challenge := challenge_of(event, change.order):
                    challenges.append((*key, *challenge, at))
        tx.append(
            self.t("failure_log"),
            ("order_id", "version", "kind", "event", "number", "code", "message", "at"),
            rows,
        )
        tx.append(
            self.t("challenge_log"), ("order_id", "version", "attempt", "outcome", "at"), challenges
        )
