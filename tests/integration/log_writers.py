"""Writers for the log-order tests (tests/integration/test_log_order.py): real orders' events,
inserted through the store's own insert function, in transactions the test controls."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import psycopg
from eventsourcing.persistence import StoredEvent

from adapters.codec import OrjsonTranscoder
from adapters.db import Database
from adapters.psp.unavailable import NoPSP
from app.application import PaymentsApp
from bootstrap.settings import Settings
from domain.cart import Checkout, LineItem
from domain.order import PaymentOrder

INSERT = "SELECT id FROM payments_insert_events_uuid(%s, %s, %s, %s) AS id"


def connect(url: str) -> psycopg.Connection[Any]:
    """A connection in autocommit: BEGIN/COMMIT are sent as statements, as a test scripts them."""
    base, _, schema = url.partition("?schema=")
    return psycopg.connect(base, autocommit=True, options=f"-c search_path={schema or 'public'}")


def _events(app: PaymentsApp) -> tuple[list[Any], ...]:
    checkout = Checkout(
        buyer_id="buyer-1",
        currency="EUR",
        items=(LineItem("seller-1", "sku", 1, 1000),),
        payment_method="pm_card_visa",
    )
    now = app.clock()
    order = PaymentOrder.place(
        checkout,
        client_id="log-test",
        idempotency_key=str(uuid.uuid4()),
        fee_bps=1000,
        now=now,
        session_ttl=app.config.session_ttl,
    )
    order.request_authorization("pm_card_visa", now, None)
    stored = [app.mapper.to_stored_event(e) for e in order.collect_events()]
    return (
        [s.originator_id for s in stored],
        [s.originator_version for s in stored],
        [s.topic for s in stored],
        [s.state for s in stored],
    )


def insert_order(conn: psycopg.Connection[Any], app: PaymentsApp) -> int:
    """A new order's two events through the insert function; the first one's position."""
    rows = conn.execute(INSERT, _events(app)).fetchall()
    return int(rows[0][0])


def insert_order_committed(app: PaymentsApp) -> int:
    """The same through the application's recorder (its own committed transaction)."""
    ids, versions, topics, states = _events(app)
    stored = [StoredEvent(*row) for row in zip(ids, versions, topics, states, strict=True)]
    positions = app.recorder.insert_events(stored)
    assert positions is not None
    return int(positions[0])


def head(db: Database) -> int:
    return int(db.one(f"SELECT COALESCE(MAX(notification_id), 0) FROM {db.events_table}")[0][0])  # noqa: S608


def held_seconds(container: Any) -> float:
    """What `payments_log_held_seconds` reports on /metrics."""
    for family in container.metrics.registry.collect():
        if family.name == "payments_log_held_seconds":
            return float(family.samples[0].value)
    raise AssertionError("no payments_log_held_seconds gauge")


def storm(url: str, stop: threading.Event, seed: int) -> None:
    """Until `stop`: orders inserted in transactions that commit at once, commit late, roll
    back, or stay open for a while (holding every reader back)."""
    app = _app(url)
    rand = random.Random(seed)
    with connect(url) as conn:
        while not stop.is_set():
            _one(conn, app, rand)
    app.close()


def storm_for(url: str, seconds: float, seed: int) -> None:
    """`storm` in another process, for `seconds`."""
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    storm(url, stop, seed)


def _one(conn: psycopg.Connection[Any], app: PaymentsApp, rand: random.Random) -> None:
    kind = rand.random()
    if kind < 0.3:
        insert_order(conn, app)  # autocommit: commits at once
        return
    conn.execute("BEGIN")
    insert_order(conn, app)
    time.sleep(rand.choice([0, 0.001, 0.005, 0.02, 0.1 if kind > 0.95 else 0.002]))
    conn.execute("ROLLBACK" if kind < 0.45 else "COMMIT")


def _app(url: str) -> PaymentsApp:
    settings = Settings(database_url=url)
    return PaymentsApp(
        settings.event_store_env(),
        psp=NoPSP(),
        config=settings.payments_config(),
        codec=OrjsonTranscoder,
    )
