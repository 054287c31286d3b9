"""Public events: what the marketplace is told, derived from the event store (the outbox).

One event per order status change, `payment_order.<new status>` (the first is
`payment_order.processing`, when the order is placed), and `refund.succeeded` for each
refund. Each carries a stable id (`evt_<order id hex>_<version>`, a refund's with `_refund`),
`created` (when it happened), `order_id`, and `data`: the order document as of that version.
Their shape is versioned (`api_version`) and separate from internal event classes, which
may change. Being a projection, a rebuild derives the same events with the same ids.

Projecting an event also fans it out to the webhook endpoints that want it
(adapters/webhook_store.py); a rebuild's copy does not (deliveries are not rebuilt). The
one owner of the `public_events` table's SQL.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from adapters import webhook_store
from adapters.db import Database, Tx
from projections.base import Moment, OrderChange, Projection
from projections.documents import in_utc, is_refund

API_VERSION = "v1"
TYPES = (
    "payment_order.processing",
    "payment_order.requires_action",
    "payment_order.requires_payment_method",
    "payment_order.authorized",
    "payment_order.succeeded",
    "payment_order.failed",
    "payment_order.needs_review",
    "payment_order.expired",
    "payment_order.canceled",
    "payment_order.refunded",
    "payment_order.partially_refunded",
    "refund.succeeded",
)


class PublicEventsProjection(Projection):
    name = "public_events"
    tables: ClassVar[dict[str, str]] = {
        "public_events": """
            CREATE TABLE IF NOT EXISTS {table} (
                position BIGINT NOT NULL,
                sub INTEGER NOT NULL,
                id TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL,
                order_id TEXT NOT NULL,
                client_id TEXT NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (position, sub)
            );
            CREATE INDEX IF NOT EXISTS {table}_by_client ON {table} (client_id, position, sub)
        """,
    }

    def apply(self, tx: Tx, changes: Sequence[OrderChange]) -> None:
        rows = [row for change in changes for row in derive(change)]
        self.write(
            tx,
            "public_events",
            ("position", "sub", "id", "type", "order_id", "client_id", "body"),
            [
                (
                    r["position"],
                    r["sub"],
                    r["id"],
                    r["type"],
                    r["order_id"],
                    r["client_id"],
                    r["body"],
                )
                for r in rows
            ],
            "ON CONFLICT (position, sub) DO NOTHING",
        )
        if not self.suffix:
            webhook_store.fan_out(tx, rows, time.time())


def derive(change: OrderChange) -> list[dict[str, Any]]:
    """The public events of a change's new internal events, each with the order as of it
    (the moments the runner noted while replaying the order once)."""
    rows: list[dict[str, Any]] = []
    for moment in change.moments:
        if moment.status_changed:
            rows.append(_row(change, moment, 0, f"payment_order.{moment.status}", ""))
        if is_refund(moment.event):
            rows.append(_row(change, moment, 1, "refund.succeeded", "_refund"))
    return rows


def _row(change: OrderChange, moment: Moment, sub: int, kind: str, suffix: str) -> dict[str, Any]:
    order, event = change.order, moment.event
    event_id = f"evt_{order.id.hex}_{event.originator_version}{suffix}"
    head = {
        "id": event_id,
        "type": kind,
        "api_version": API_VERSION,
        "created": in_utc(event.timestamp),
        "order_id": change.key,
    }
    # The document is already JSON: spliced in as the last member, not parsed and dumped
    # (nor encoded to bytes and back).
    body = orjson.dumps(head, option=orjson.OPT_UTC_Z)[:-1].decode()
    body += ',"data":' + moment.written() + "}"
    return {
        "position": moment.position,
        "sub": sub,
        "id": event_id,
        "type": kind,
        "order_id": change.key,
        "client_id": order.client_id,
        "body": body,
    }


def page(
    db: Database,
    after: tuple[int, int] | None,
    limit: int,
    kind: str | None,
    client_id: str | None,
) -> list[dict[str, Any]]:
    """Up to `limit` events after the cursor, oldest first, with their positions."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    if after is not None:
        where.append("(position > %s OR (position = %s AND sub > %s))")
        params += [after[0], after[0], after[1]]
    if kind is not None:
        where.append("type = %s")
        params.append(kind)
    if client_id is not None:
        where.append("client_id = %s")
        params.append(client_id)
    rows = db.one(
        f"SELECT position, sub, body FROM public_events WHERE {' AND '.join(where)} "  # noqa: S608
        "ORDER BY position, sub LIMIT %s",
        [*params, limit],
    )
    return [{"position": int(p), "sub": int(s), "body": body} for p, s, body in rows]


def by_id(db: Database, event_id: str) -> dict[str, Any] | None:
    """One event with what a delivery needs (position, order, client, body)."""
    rows = db.one(
        "SELECT position, sub, id, type, order_id, client_id, body FROM public_events "
        "WHERE id = %s",
        (event_id,),
    )
    keys = ("position", "sub", "id", "type", "order_id", "client_id", "body")
    return dict(zip(keys, rows[0], strict=True)) if rows else None


def bodies(db: Database, event_ids: Sequence[str]) -> dict[str, str]:
    """The JSON bodies of these events, by id."""
    if not event_ids:
        return {}
    fragment, params = db.in_list(list(event_ids))
    rows = db.one(f"SELECT id, body FROM public_events WHERE id {fragment}", params)  # noqa: S608
    return {event_id: body for event_id, body in rows}
