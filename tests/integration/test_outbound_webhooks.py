"""Telling the marketplace: public events, the feed, and signed webhooks to a real receiver.

The receiver is an HTTP server on loopback that verifies every delivery with the
`standardwebhooks` package (as a marketplace would), and that fails, hangs and answers
slowly before it comes back. Whatever it does, every public event reaches it at least once,
in order per order.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters import webhook_store
from adapters.outbound import Attempt, Sender
from api.main import create_app
from api.threaded_server import ThreadedServer
from bootstrap.composition import Container, build
from bootstrap.migrate import migrate
from bootstrap.settings import Settings
from domain.cart import Checkout, LineItem
from projections import rebuild as rebuilding
from projections.catalog import all_projections
from tests.integration.conftest import FAST
from workers.outbound import PER_ENDPOINT, PER_FAILING_ENDPOINT, OutboundPolicy, OutboundWorker

OUTBOUND: dict[str, Any] = {
    "outbound_timeout_s": 0.5,
    "outbound_retry_base_s": 0.05,
    "outbound_retry_max_s": 0.2,
}
ITEMS = (LineItem("s1", "mug", 2, 1000), LineItem("s2", "tea", 1, 550))


@dataclass
class Receiver:
    """A marketplace's webhook receiver; `script` says how it answers the next requests
    ("fail", "hang", "slow"); then it answers 204."""

    secret: str = ""
    script: list[str] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    unverified: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    gate: threading.Event = field(default_factory=threading.Event)
    waiting: int = 0
    most_waiting: int = 0

    def __post_init__(self) -> None:
        self.gate.set()

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            mode = self.script.pop(0) if self.script else "ok"
        if mode == "hang":
            time.sleep(1.0)  # past the sender's timeout
        if not self.gate.is_set():  # closed: every request waits, the server stays up
            with self.lock:
                self.waiting += 1
                self.most_waiting = max(self.most_waiting, self.waiting)
            while not self.gate.is_set():
                await asyncio.sleep(0.01)
            with self.lock:
                self.waiting -= 1
        elif mode == "slow":
            time.sleep(0.2)
        if mode == "fail":
            return Response(status_code=500)
        try:
            event = Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:  # counted and asserted
            self.unverified += 1
            return Response(status_code=400)
        with self.lock:
            self.received.append(event)
        return Response(status_code=204)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    handler = Receiver()
    server = ThreadedServer(
        Starlette(routes=[Route("/hooks", handler.handle, methods=["POST"])])
    ).start()
    yield handler, f"{server.url}/hooks"
    server.stop()


@pytest.fixture
def stack(
    database_url: str, simulator_server: ThreadedServer, simulator: Any
) -> Iterator[tuple[Container, httpx.Client]]:
    settings = Settings(database_url=database_url, **FAST, **OUTBOUND)
    migrate(settings)
    container = build(settings, psp_url=simulator_server.url)
    server = ThreadedServer(create_app(container)).start()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield container, http
    server.stop()
    container.close()


def subscribe(http: httpx.Client, url: str, events: list[str] | None = None) -> dict[str, Any]:
    created = http.post("/v1/webhook-endpoints", json={"url": url, "events": events or ["*"]})
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    assert body["secret"].startswith("whsec_")
    return body


def workload(container: Container) -> list[uuid.UUID]:
    """Orders with several status changes each: captured then refunded twice, declined then
    retried, authorized then canceled."""
    app = container.app
    ids = []
    for n, (method, capture) in enumerate(
        [
            ("pm_card_visa", "automatic"),
            ("pm_card_declined", "automatic"),
            ("pm_card_visa", "manual"),
        ]
    ):
        cart = Checkout("buyer", "EUR", ITEMS, method, capture)
        order = app.place_checkout(cart, client_id="development", idempotency_key=f"k{n}").order
        ids.append(order.id)
    app.refund(ids[0], 500, "r1")
    app.refund(ids[0], 2050, "r2")
    app.add_attempt(ids[1], "pm_card_visa", "again")
    app.cancel(ids[2], "cancel")
    return ids


def deliver_all(container: Container, workers: list[OutboundWorker], timeout_s: float = 30) -> None:
    container.runner.catch_up()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        threads = [threading.Thread(target=w.run_once) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pending = container.db.one(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'"
        )
        if not pending[0][0]:
            return
        time.sleep(0.05)
    raise AssertionError("deliveries still pending")


def feed(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every event of the feed, paging `limit` at a time."""
    events: list[dict[str, Any]] = []
    after = None
    while True:
        page = http.get(
            "/v1/events", params={**params, **({"after": after} if after else {})}
        ).json()
        events += page["data"]
        after = page["next_cursor"]
        if not page["has_more"]:
            return events


def test_every_event_reaches_a_flaky_receiver_once_verified_in_order_per_order(
    stack: tuple[Container, httpx.Client], receiver: tuple[Receiver, str]
) -> None:
    container, http = stack
    handler, url = receiver
    handler.secret = subscribe(http, url)["secret"]
    handler.script = ["fail", "fail", "hang", "slow", "fail", "hang"]
    ids = workload(container)
    deliver_all(container, [container.outbound])
    events = feed(http, limit=2)
    assert {e["order_id"] for e in events} == {str(i) for i in ids}
    types = [e["type"] for e in events]
    assert types.count("refund.succeeded") == 2 and "payment_order.canceled" in types
    assert handler.unverified == 0
    first_seen = list(dict.fromkeys(e["id"] for e in handler.received))
    assert sorted(first_seen) == sorted(e["id"] for e in events)  # all, at least once
    for order_id in ids:  # and, per order, in the order they happened
        mine = [e["id"] for e in events if e["order_id"] == str(order_id)]
        assert [i for i in first_seen if i in mine] == mine
    assert all(e["data"]["id"] == e["order_id"] for e in handler.received)
    tries = http.get(f"/v1/webhook-endpoints/{_endpoint_id(http)}/deliveries").json()["data"]
    assert any(t["status_code"] == 500 for t in tries) and any(t["error"] for t in tries)


def test_a_hung_endpoint_holds_back_neither_another_endpoint_nor_its_next_events(
    stack: tuple[Container, httpx.Client],
) -> None:
    """Deliveries to an endpoint that does not answer (its requests held open) take its
    share of threads and no more: another endpoint gets every event, each order's in turn,
    while they hang; the backlog of the hung one never fills the worker's view of what is
    due (a batch of 4 here). Then the hung one answers and gets everything too."""
    container, http = stack
    hung, healthy = Receiver(), Receiver()
    hung.gate.clear()
    servers = [ThreadedServer(_receiver_app(r)).start() for r in (hung, healthy)]
    worker = OutboundWorker(
        container.db, Sender(30.0, allow_private=True), OutboundPolicy(timeout_s=30.0), batch=4
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    try:
        hung.secret = subscribe(http, f"{servers[0].url}/hooks")["secret"]
        healthy.secret = subscribe(http, f"{servers[1].url}/hooks")["secret"]
        workload(container)
        for n in range(PER_ENDPOINT + 4):  # more orders than the hung endpoint's threads
            cart = Checkout("buyer", "EUR", ITEMS, "pm_card_visa", "automatic")
            container.app.place_checkout(cart, client_id="development", idempotency_key=f"m{n}")
        container.runner.catch_up()
        events = feed(http)
        thread.start()
        assert _eventually(lambda: len(healthy.received) >= len(events))
        assert _eventually(lambda: hung.waiting == PER_ENDPOINT)  # its share of the threads
        assert hung.most_waiting == PER_ENDPOINT and not hung.received  # and no more
        _assert_in_order(healthy, events)
        hung.gate.set()
        assert _eventually(lambda: len(hung.received) >= len(events))
        _assert_in_order(hung, events)
    finally:
        hung.gate.set()
        stop.set()
        thread.join(timeout=10) if thread.is_alive() else None
        worker.close()
        for server in servers:
            server.stop()


def test_an_endpoint_that_failed_gets_two_threads_even_for_events_not_tried_yet(
    stack: tuple[Container, httpx.Client],
) -> None:
    container, http = stack
    at_once, most = [0], [0]  # requests open now, and the most open after the first answer
    answered = threading.Event()

    async def failing(request: Request) -> Response:
        at_once[0] += 1  # one event loop: no lock needed
        if answered.is_set():
            most[0] = max(most[0], at_once[0])
        await asyncio.sleep(0.1)
        at_once[0] -= 1
        answered.set()
        return Response(status_code=500)

    server = ThreadedServer(Starlette(routes=[Route("/hooks", failing, methods=["POST"])]))
    server.start()
    worker = OutboundWorker(container.db, Sender(5.0, allow_private=True), OutboundPolicy())
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    try:
        subscribe(http, f"{server.url}/hooks")
        for n in range(3 * PER_ENDPOINT):  # each order's first event is due at once
            cart = Checkout("buyer", "EUR", ITEMS, "pm_card_visa", "automatic")
            container.app.place_checkout(cart, client_id="development", idempotency_key=f"f{n}")
        container.runner.catch_up()
        thread.start()
        tried = "SELECT COUNT(*) FROM webhook_deliveries WHERE tries > 0"
        assert _eventually(lambda: container.db.one(tried)[0][0] >= 2 * PER_ENDPOINT)
        assert 0 < most[0] <= PER_ENDPOINT  # the first wave was in flight when one failed
        most[0] = 0
        assert _eventually(lambda: container.db.one(tried)[0][0] >= 2 * PER_ENDPOINT + 8)
        assert 0 < most[0] <= PER_FAILING_ENDPOINT
    finally:
        stop.set()
        thread.join(timeout=10) if thread.is_alive() else None
        worker.close()
        server.stop()


def test_an_endpoints_retries_never_fill_the_batch_for_the_others(
    stack: tuple[Container, httpx.Client], receiver: tuple[Receiver, str]
) -> None:
    """An endpoint back from an outage (or a worker just started) has a backlog of retries
    due, two at a time: with two on their way, its retries are left out of the batch of due
    rows (2 here), where they used to fill it and starve every other endpoint."""
    container, http = stack
    handler, url = receiver
    recovering = subscribe(http, "http://192.0.2.1/hooks")  # never reached in this test
    handler.secret = subscribe(http, url, ["refund.succeeded"])["secret"]
    workload(container)
    container.runner.catch_up()
    container.db.one(  # its deliveries: retries, due now (and older than the refunds)
        "UPDATE webhook_deliveries SET tries = 1 WHERE endpoint_id = %s", (recovering["id"],)
    )
    worker = OutboundWorker(
        container.db, Sender(5.0, allow_private=True), OutboundPolicy(), batch=2
    )
    worker._sending[recovering["id"]] = PER_FAILING_ENDPOINT  # two retries on their way
    try:
        assert worker.run_once() == 1
        assert [e["type"] for e in handler.received] == ["refund.succeeded"]
    finally:
        worker.close()


@pytest.mark.parametrize("error", [RuntimeError, sqlite3.OperationalError])
def test_tries_that_cannot_be_recorded_together_are_recorded_one_by_one(
    stack: tuple[Container, httpx.Client],
    receiver: tuple[Receiver, str],
    monkeypatch: pytest.MonkeyPatch,
    error: type[Exception],
) -> None:
    """A row that makes the group fail costs only itself; a store that is down or locked
    (an operational error) is not asked again for each try."""
    container, http = stack
    handler, url = receiver
    handler.secret = subscribe(http, url)["secret"]
    workload(container)
    container.runner.catch_up()
    record = webhook_store.record
    groups: list[int] = []

    def one_at_a_time(db: Any, tries: Any) -> None:
        groups.append(len(tries))
        if len(tries) > 1:
            raise error("a group commit that fails")
        record(db, tries)

    monkeypatch.setattr(webhook_store, "record", one_at_a_time)
    worker = container.outbound
    due = webhook_store.due(container.db, time.time(), 100)
    assert len(due) > 2
    answered = Attempt(204, None, 1)
    tries = [webhook_store.Tried(d, time.time(), answered, None, give_up=False) for d in due]
    worker._record(tries)
    one_by_one = error is RuntimeError
    assert groups == [len(tries)] + ([1] * len(tries) if one_by_one else [])
    delivered = container.db.one(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'delivered'"
    )
    assert delivered[0][0] == (len(tries) if one_by_one else 0)


def _receiver_app(handler: Receiver) -> Starlette:
    return Starlette(routes=[Route("/hooks", handler.handle, methods=["POST"])])


def _eventually(condition: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _assert_in_order(handler: Receiver, events: list[dict[str, Any]]) -> None:
    """Every event once, verified, and each order's in the order they happened."""
    assert handler.unverified == 0
    got = [e["id"] for e in handler.received]
    assert sorted(got) == sorted(e["id"] for e in events)
    for order_id in {e["order_id"] for e in events}:
        mine = [e["id"] for e in events if e["order_id"] == order_id]
        assert [i for i in got if i in mine] == mine


def test_two_workers_never_send_one_event_twice_to_a_healthy_receiver(
    stack: tuple[Container, httpx.Client], receiver: tuple[Receiver, str]
) -> None:
    container, http = stack
    handler, url = receiver
    handler.secret = subscribe(http, url)["secret"]
    workload(container)
    other = build(container.settings, with_psp=False)
    try:
        deliver_all(container, [container.outbound, other.outbound])
    finally:
        other.close()
    ids = [e["id"] for e in handler.received]
    assert ids and len(ids) == len(set(ids))


def test_an_endpoint_that_never_answers_well_is_disabled_after_the_give_up_time(
    database_url: str,
    simulator_server: ThreadedServer,
    simulator: Any,
    receiver: tuple[Receiver, str],
) -> None:
    handler, url = receiver
    handler.script = ["fail"] * 1000
    settings = Settings(database_url=database_url, **FAST, **OUTBOUND, outbound_give_up_after_s=0.3)
    migrate(settings)
    container = build(settings, psp_url=simulator_server.url)
    server = ThreadedServer(create_app(container)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            subscribe(http, url, ["payment_order.succeeded"])
            cart = Checkout("buyer", "EUR", ITEMS, "pm_card_visa", "automatic")
            container.app.place_checkout(cart, client_id="development", idempotency_key="k")
            container.runner.catch_up()
            deadline = time.monotonic() + 10
            while (
                time.monotonic() < deadline
                and http.get("/v1/webhook-endpoints").json()["data"][0]["status"] == "enabled"
            ):
                container.outbound.run_once()
                time.sleep(0.05)
            [endpoint] = http.get("/v1/webhook-endpoints").json()["data"]
            assert endpoint["status"] == "disabled" and "gave up" in endpoint["disabled_reason"]
            assert "secret" not in endpoint
    finally:
        server.stop()
        container.close()


def test_the_feed_filters_by_type_and_a_client_sees_only_its_own(
    database_url: str, simulator_server: ThreadedServer, simulator: Any
) -> None:
    keys = "checkout:client-a-key,checkout:client-b-key,ops:ops-key-0001"
    settings = Settings(database_url=database_url, api_keys=keys, webhook_secret="w" * 16, **FAST)
    migrate(settings)
    container = build(settings, psp_url=simulator_server.url)
    server = ThreadedServer(create_app(container)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            cart = {
                "buyer_id": "b",
                "currency": "EUR",
                "payment_method": "pm_card_visa",
                "items": [{"seller_id": "s", "sku": "x", "quantity": 1, "unit_amount": 100}],
            }
            for key in ("client-a-key", "client-b-key"):
                headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "same"}
                assert http.post("/v1/checkouts", json=cart, headers=headers).status_code == 201
            container.runner.catch_up()
            mine = http.get("/v1/events", headers={"Authorization": "Bearer client-a-key"}).json()
            everyone = http.get(
                "/v1/events", headers={"Authorization": "Bearer ops-key-0001"}
            ).json()
            assert len({e["order_id"] for e in mine["data"]}) == 1
            assert len({e["order_id"] for e in everyone["data"]}) == 2
            succeeded = http.get(
                "/v1/events",
                params={"type": "payment_order.succeeded"},
                headers={"Authorization": "Bearer ops-key-0001"},
            ).json()["data"]
            assert [e["type"] for e in succeeded] == ["payment_order.succeeded"] * 2
            loopback = http.post(
                "/v1/webhook-endpoints",
                json={"url": "http://127.0.0.1:9/hook", "events": ["*"]},
                headers={"Authorization": "Bearer client-a-key"},
            )
            assert loopback.status_code == 422 and loopback.json()["errors"][0]["field"] == "url"
            bad = http.get(
                "/v1/events",
                params={"after": "x"},
                headers={"Authorization": "Bearer ops-key-0001"},
            )
            assert bad.status_code == 422
    finally:
        server.stop()
        container.close()


def test_a_rebuild_derives_the_same_events_with_the_same_ids(
    stack: tuple[Container, httpx.Client],
) -> None:
    container, http = stack
    workload(container)
    container.runner.catch_up()
    before = feed(http)
    timing = container.app.config.timing
    live = next(p for p in all_projections(timing) if p.name == "public_events")
    copy = next(p for p in all_projections(timing, rebuilding.SUFFIX) if p.name == "public_events")
    rebuilding.rebuild(container.db, container.runner.log, live, copy)
    assert feed(http) == before


def _endpoint_id(http: httpx.Client) -> str:
    endpoint_id: str = http.get("/v1/webhook-endpoints").json()["data"][0]["id"]
    return endpoint_id
