"""The order read model: one row per order (status, buyer, amounts, the API document) and
one row per attempt, for the status pages, the order list and the failure dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from adapters.db import Tx
from projections.base import OrderChange, Projection


class OrdersProjection(Projection):
    name = "orders"
    tables: ClassVar[dict[str, str]] = {
        "order_view": """
            CREATE TABLE IF NOT EXISTS {table} (
                order_id TEXT PRIMARY KEY,
                client_id TEXT NOT NULL,
                buyer_id TEXT NOT NULL,
                status TEXT NOT NULL,
                currency TEXT NOT NULL,
                amount BIGINT NOT NULL,
                captured_amount BIGINT NOT NULL,
                refunded_amount BIGINT NOT NULL,
                review_reason TEXT,
                version BIGINT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                document TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS {table}_by_status ON {table} (status, created_at, order_id);
            CREATE INDEX IF NOT EXISTS {table}_by_buyer ON {table} (buyer_id, created_at, order_id);
            CREATE INDEX IF NOT EXISTS {table}_by_time ON {table} (created_at, order_id);
            CREATE INDEX IF NOT EXISTS {table}_in_review ON {table} (updated_at)
                WHERE review_reason IS NOT NULL
        """,
        "attempt_view": """
            CREATE TABLE IF NOT EXISTS {table} (
                order_id TEXT NOT NULL,
                number INTEGER NOT NULL,
                status TEXT NOT NULL,
                failure_code TEXT,
                updated_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (order_id, number)
            );
            CREATE INDEX IF NOT EXISTS {table}_by_status ON {table} (status)
        """,
        "dispute_view": """
            CREATE TABLE IF NOT EXISTS {table} (
                dispute_id TEXT PRIMARY KEY,
                order_id TEXT NOT NULL,
                status TEXT NOT NULL,
                amount BIGINT NOT NULL,
                currency TEXT NOT NULL,
                reason TEXT NOT NULL,
                evidence_due_by DOUBLE PRECISION,
                updated_at DOUBLE PRECISION NOT NULL
            );
            CREATE INDEX IF NOT EXISTS {table}_by_status ON {table} (status, evidence_due_by);
            CREATE INDEX IF NOT EXISTS {table}_by_order ON {table} (order_id)
        """,
    }

    def apply(self, tx: Tx, changes: Sequence[OrderChange]) -> None:
        self.write(
            tx,
            "order_view",
            ORDER_COLUMNS,
            [order_row(c) for c in changes],
            "ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, "
            "captured_amount = excluded.captured_amount, "
            "refunded_amount = excluded.refunded_amount, "
            "review_reason = excluded.review_reason, version = excluded.version, "
            "updated_at = excluded.updated_at, document = excluded.document",
        )
        self.write(
            tx,
            "attempt_view",
            ("order_id", "number", "status", "failure_code", "updated_at"),
            [row for c in changes for row in attempt_rows(c)],
            "ON CONFLICT (order_id, number) DO UPDATE SET "
            "status = excluded.status, failure_code = excluded.failure_code, "
            "updated_at = excluded.updated_at",
        )
        self.write(
            tx,
            "dispute_view",
            DISPUTE_COLUMNS,
            [row for c in changes for row in dispute_rows(c)],
            "ON CONFLICT (dispute_id) DO UPDATE SET status = excluded.status, "
            "updated_at = excluded.updated_at",
        )


ORDER_COLUMNS = (
    "order_id",
    "client_id",
    "buyer_id",
    "status",
    "currency",
    "amount",
    "captured_amount",
    "refunded_amount",
    "review_reason",
    "version",
    "created_at",
    "updated_at",
    "document",
)
DISPUTE_COLUMNS = (
    "dispute_id",
    "order_id",
    "status",
    "amount",
    "currency",
    "reason",
    "evidence_due_by",
    "updated_at",
)


def order_row(change: OrderChange) -> tuple[Any, ...]:
    """The order_view row for an order's current state."""
    order = change.order
    review = order.review["reason"] if order.review else None
    return (
        change.key,
        order.client_id,
        order.buyer_id,
        order.status.value,
        order.currency,
        order.amount,
        order.captured_amount,
        order.refunded_amount,
        review,
        order.version,
        order.created_on.timestamp(),
        order.modified_on.timestamp(),
        change.document(),
    )


def dispute_rows(change: OrderChange) -> list[tuple[Any, ...]]:
    """The dispute_view rows of an order (none for the many never disputed)."""
    order = change.order
    at = order.modified_on.timestamp()
    return [
        (
            d.id,
            str(order.id),
            d.status.value,
            d.amount,
            order.currency,
            d.reason,
            d.evidence_due_by.timestamp() if d.evidence_due_by else None,
            at,
        )
        for d in order.disputes.values()
    ]


def attempt_rows(change: OrderChange) -> list[tuple[Any, ...]]:
    at = change.order.modified_on.timestamp()
    return [
        (change.key, a.number, a.status.value, a.failure_code, at) for a in change.order.attempts
    ]
