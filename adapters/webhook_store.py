"""Webhook endpoints, their deliveries and every delivery try. The one owner of those tables.

A delivery is one public event for one endpoint (id `<endpoint>:<event>`), created when the
event is projected (fan-out), `pending` until a try gets a 2xx (`delivered`), or until the
endpoint gives up (`failed`). Workers claim a delivery with a lease before sending it, so
two workers never send one event to one endpoint at once; a later event of an order waits
while an earlier one of the same order is pending for that endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adapters.db import Database, Tx

if TYPE_CHECKING:  # the sender's module imports httpx, which the read side does without
    from adapters.outbound import Attempt

TABLES = [
    "CREATE TABLE IF NOT EXISTS webhook_endpoints (id TEXT PRIMARY KEY, client_id TEXT NOT NULL, "
    "url TEXT NOT NULL, events TEXT NOT NULL, secret TEXT NOT NULL, status TEXT NOT NULL, "
    "created_at DOUBLE PRECISION NOT NULL, disabled_reason TEXT)",
    "CREATE TABLE IF NOT EXISTS webhook_deliveries (id TEXT PRIMARY KEY, "
    "endpoint_id TEXT NOT NULL, event_id TEXT NOT NULL, position BIGINT NOT NULL, "
    "sub INTEGER NOT NULL, order_id TEXT NOT NULL, status TEXT NOT NULL, "
    "tries INTEGER NOT NULL, next_at DOUBLE PRECISION NOT NULL, "
    "first_try_at DOUBLE PRECISION, lease_until DOUBLE PRECISION, "
    "delivered_at DOUBLE PRECISION)",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (status, next_at)",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_order ON webhook_deliveries "
    "(endpoint_id, order_id, position, sub)",
    "CREATE TABLE IF NOT EXISTS webhook_attempts (delivery_id TEXT NOT NULL, "
    "endpoint_id TEXT NOT NULL, event_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, "
    "status_code INTEGER, error TEXT, latency_ms INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, at)",
]
ENDPOINT_COLUMNS = "id, client_id, url, events, secret, status, created_at, disabled_reason"


@dataclass(frozen=True)
class Endpoint:
    id: str
    client_id: str
    url: str
    events: tuple[str, ...]
    secret: str
    status: str
    created_at: float
    disabled_reason: str | None = None

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


@dataclass(frozen=True)
class Due:
    """A delivery whose turn has come, with where and how to send it."""

    id: str
    endpoint_id: str
    event_id: str
    url: str
    secret: str
    tries: int
    first_try_at: float | None


def create(tx: Tx) -> None:
    for statement in TABLES:
        tx.execute(statement)


def _endpoint(row: Sequence[Any]) -> Endpoint:
    id_, client, url, events, secret, status, created, reason = row
    return Endpoint(
        id_, client, url, tuple(json.loads(events)), secret, status, float(created), reason
    )


def add_endpoint(db: Database, endpoint: Endpoint) -> None:
    with db.transaction() as tx:
        tx.execute(
            f"INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                endpoint.id,
                endpoint.client_id,
                endpoint.url,
                json.dumps(list(endpoint.events)),
                endpoint.secret,
                endpoint.status,
                endpoint.created_at,
                None,
            ),
        )


def endpoints(db: Database, client_id: str | None = None) -> list[Endpoint]:
    """Endpoints not deleted (of one client, or all)."""
    where, params = ("AND client_id = %s", [client_id]) if client_id else ("", [])
    rows = db.one(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE status <> 'deleted' "  # noqa: S608
        f"{where} ORDER BY created_at, id",
        params,
    )
    return [_endpoint(r) for r in rows]


def endpoint(db: Database, endpoint_id: str) -> Endpoint | None:
    rows = db.one(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = %s AND status <> 'deleted'",  # noqa: S608
        (endpoint_id,),
    )
    return _endpoint(rows[0]) if rows else None


def delete_endpoint(db: Database, endpoint_id: str) -> None:
    """Stop sending to it: the endpoint is deleted and its pending deliveries canceled."""
    with db.transaction() as tx:
        tx.execute("UPDATE webhook_endpoints SET status = 'deleted' WHERE id = %s", (endpoint_id,))
        tx.execute(
            "UPDATE webhook_deliveries SET status = 'canceled' "
            "WHERE endpoint_id = %s AND status = 'pending'",
            (endpoint_id,),
        )


def fan_out(tx: Tx, events: Sequence[dict[str, Any]], now: float) -> None:
    """A delivery for each enabled endpoint of each event's client that wants its type.
    Idempotent: a delivery that exists is left as it is."""
    rows = tx.execute(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE status = 'enabled'"  # noqa: S608
    )
    enabled = [_endpoint(r) for r in rows]
    deliveries = [
        (
            f"{e.id}:{event['id']}",
            e.id,
            event["id"],
            event["position"],
            event["sub"],
            event["order_id"],
            now,
        )
        for event in events
        for e in enabled
        if e.client_id == event["client_id"] and e.wants(event["type"])
    ]
    tx.insert(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, position, sub, order_id, "
        "status, tries, next_at)",
        [(*d[:6], "pending", 0, d[6]) for d in deliveries],
        "ON CONFLICT (id) DO NOTHING",
    )


def due(
    db: Database,
    now: float,
    limit: int,
    skip_endpoints: Sequence[str] = (),
    skip_retries_of: Sequence[str] = (),
) -> list[Due]:
    """Pending deliveries whose time has come, not leased, and first in line for their order
    at their endpoint; oldest first. The endpoints in `skip_endpoints` (all the deliveries
    they may have on their way), and the retries of those in `skip_retries_of` (all the
    retries they may have on their way), are left out, so a backlog that could not be taken
    never fills the `limit` for the others."""
    skip, skipped = "", list[Any]()
    if skip_endpoints:
        fragment, params = db.in_list(list(skip_endpoints))
        skip, skipped = f"AND NOT d.endpoint_id {fragment} ", params
    if skip_retries_of:
        fragment, params = db.in_list(list(skip_retries_of))
        skip += f"AND NOT (d.tries > 0 AND d.endpoint_id {fragment}) "
        skipped += params
    rows = db.one(
        "SELECT d.id, d.endpoint_id, d.event_id, e.url, e.secret, d.tries, d.first_try_at "  # noqa: S608
        "FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
        "WHERE d.status = 'pending' AND d.next_at <= %s AND e.status = 'enabled' "
        "AND (d.lease_until IS NULL OR d.lease_until < %s) "
        f"{skip}"
        "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint_id = d.endpoint_id "
        "AND p.order_id = d.order_id AND p.status = 'pending' "
        "AND (p.position < d.position OR (p.position = d.position AND p.sub < d.sub))) "
        "ORDER BY d.position, d.sub LIMIT %s",
        (now, now, *skipped, limit),
    )
    return [Due(*row) for row in rows]


def claim_many(db: Database, delivery_ids: Sequence[str], now: float, lease_s: float) -> set[str]:
    """Take deliveries for `lease_s` seconds in one statement: the ids taken, without those
    another worker holds or that stopped being pending."""
    if not delivery_ids:
        return set()
    fragment, params = db.in_list(list(delivery_ids))
    with db.transaction() as tx:
        rows = tx.execute(
            f"UPDATE webhook_deliveries SET lease_until = %s WHERE id {fragment} "  # noqa: S608
            "AND status = 'pending' AND (lease_until IS NULL OR lease_until < %s) RETURNING id",
            (now + lease_s, *params, now),
        )
    return {row[0] for row in rows}


@dataclass(frozen=True)
class Tried:
    """One try of a delivery, to record: the sender's `attempt` (its status code or error,
    how long it took) and what comes next (`next_at`, or `give_up`)."""

    due: Due
    at: float
    attempt: Attempt
    next_at: float | None
    give_up: bool

    @property
    def status(self) -> str:
        return "delivered" if self.attempt.delivered else "failed" if self.give_up else "pending"

    def attempt_row(self) -> tuple[Any, ...]:
        """Its row of webhook_attempts."""
        due, answer = self.due, self.attempt
        code, error, ms = answer.status_code, answer.error, answer.latency_ms
        return (due.id, due.endpoint_id, due.event_id, self.at, code, error, ms)

    def delivery_row(self) -> tuple[Any, ...]:
        """The parameters of its delivery's update: status, next_at, first_try_at,
        delivered_at, id."""
        delivered_at = self.at if self.attempt.delivered else None
        return (self.status, self.next_at or self.at, self.at, delivered_at, self.due.id)


def record(db: Database, tries: Sequence[Tried]) -> None:
    """Record tries in one transaction: each delivery is delivered, retried at `next_at`, or
    (`give_up`) failed and its endpoint disabled."""
    if not tries:
        return
    with db.transaction() as tx:
        tx.insert(
            "INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, at, status_code, "
            "error, latency_ms)",
            [t.attempt_row() for t in tries],
        )
        tx.executemany(
            "UPDATE webhook_deliveries SET status = %s, tries = tries + 1, lease_until = NULL, "
            "next_at = %s, first_try_at = COALESCE(first_try_at, %s), delivered_at = %s "
            "WHERE id = %s",
            [t.delivery_row() for t in tries],
        )
        tx.executemany(
            "UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = %s "
            "WHERE id = %s AND status = 'enabled'",
            [
                (f"gave up on {t.due.event_id} after {t.due.tries + 1} tries", t.due.endpoint_id)
                for t in tries
                if t.give_up
            ],
        )


def redeliver(db: Database, endpoint: Endpoint, event: dict[str, Any], now: float) -> None:
    """Send an event to an endpoint again, now (or for the first time)."""
    with db.transaction() as tx:
        tx.execute(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, position, sub, order_id, "
            "status, tries, next_at) VALUES (%s, %s, %s, %s, %s, %s, 'pending', 0, %s) "
            "ON CONFLICT (id) DO UPDATE SET status = 'pending', next_at = excluded.next_at, "
            "first_try_at = NULL, lease_until = NULL",
            (
                f"{endpoint.id}:{event['id']}",
                endpoint.id,
                event["id"],
                event["position"],
                event["sub"],
                event["order_id"],
                now,
            ),
        )


def attempts(db: Database, endpoint_id: str, limit: int) -> list[dict[str, Any]]:
    """An endpoint's latest tries, newest first."""
    rows = db.one(
        "SELECT event_id, at, status_code, error, latency_ms FROM webhook_attempts "
        "WHERE endpoint_id = %s ORDER BY at DESC LIMIT %s",
        (endpoint_id, limit),
    )
    keys = ("event_id", "at", "status_code", "error", "latency_ms")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def health(db: Database) -> list[dict[str, Any]]:
    """Every endpoint with its backlog, last success and first failure since (dashboard)."""
    rows = db.one(
        "SELECT e.id, e.client_id, e.url, e.status, e.disabled_reason, "
        "(SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id "
        " AND d.status = 'pending'), "
        "(SELECT MAX(at) FROM webhook_attempts a WHERE a.endpoint_id = e.id "
        " AND a.status_code BETWEEN 200 AND 299) "
        "FROM webhook_endpoints e WHERE e.status <> 'deleted' ORDER BY e.created_at"
    )
    keys = ("id", "client_id", "url", "status", "disabled_reason", "backlog", "last_success")
    found = [dict(zip(keys, r, strict=True)) for r in rows]
    for row in found:
        row["failing_since"] = _failing_since(db, row["id"], row["last_success"])
    return found


def _failing_since(db: Database, endpoint_id: str, last_success: float | None) -> float | None:
    rows = db.one(
        "SELECT MIN(at) FROM webhook_attempts WHERE endpoint_id = %s AND at > %s "
        "AND (status_code IS NULL OR status_code NOT BETWEEN 200 AND 299)",
        (endpoint_id, last_success or 0.0),
    )
    return float(rows[0][0]) if rows and rows[0][0] is not None else None
