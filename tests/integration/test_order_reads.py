"""The status read's fast lane (api/order_reads.py): it answers the plain read exactly as the
route does, hands every other request on to FastAPI, and serves reads asked for at once with
one query (real store and simulator; the API served over loopback HTTP)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from api.order_reads import Documents, OrderReads
from api.threaded_server import ThreadedServer
from bootstrap.composition import Container
from bootstrap.settings import Role, Settings
from projections.runner import wait_for
from tests.integration.conftest import FAST, serving

CHECKOUT_A, CHECKOUT_B, OPS = "checkout-key-a", "checkout-key-b", "ops-key-0001"
CART = {
    "buyer_id": "buyer-1",
    "currency": "EUR",
    "items": [{"seller_id": "s1", "sku": "x", "quantity": 1, "unit_amount": 1200}],
    "payment_method": "pm_card_visa",
}
Result = TypeVar("Result")
KEYS = {CHECKOUT_A: Role.CHECKOUT, CHECKOUT_B: Role.CHECKOUT, OPS: Role.OPS}


@pytest.fixture
def served(
    database_url: str, simulator_server: ThreadedServer, simulator: object
) -> Iterator[tuple[httpx.Client, Container]]:
    keys = f"checkout:{CHECKOUT_A},checkout:{CHECKOUT_B},ops:{OPS}"
    settings = Settings(database_url=database_url, api_keys=keys, webhook_secret="s" * 16, **FAST)
    with serving(settings, simulator_server.url) as (url, container):
        container.start_projections()
        with httpx.Client(base_url=url, timeout=10) as http:
            yield http, container


def on_a_loop(work: Coroutine[Any, Any, Result]) -> Result:
    """Run `work` on a new event loop in a thread of its own (the browser tests' Playwright
    keeps a loop running in this one)."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, work).result()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def place(http: httpx.Client, container: Container, key: str = CHECKOUT_A) -> str:
    """A checkout, projected: its order id."""
    headers = bearer(key) | {"Idempotency-Key": str(uuid.uuid4())}
    created = http.post("/v1/checkouts", json=CART, headers=headers)
    assert created.status_code == 201, created.text
    assert wait_for(container.runner, int(created.headers["Payments-Position"]), 10)
    return str(created.json()["id"])


def test_the_lane_answers_every_read_as_the_route_does(
    served: tuple[httpx.Client, Container],
) -> None:
    http, container = served
    mine, theirs = place(http, container), place(http, container, CHECKOUT_B)
    missing, head = str(uuid.uuid4()), container.runner.position()
    cases = [
        (mine, bearer(CHECKOUT_A)),
        (mine, bearer(OPS)),
        (theirs, bearer(CHECKOUT_A)),  # another client's order: 404, as if not there
        (missing, bearer(OPS)),
        (mine, {}),
        (mine, bearer("wrong-key-123")),
        (mine, {"Authorization": f"Basic {CHECKOUT_A}"}),
    ]
    for order_id, headers in cases:
        lane = http.get(f"/v1/payment-orders/{order_id}", headers=headers)
        # a query string takes the request past the lane, to FastAPI's route
        route = http.get(
            f"/v1/payment-orders/{order_id}", params={"min_position": head}, headers=headers
        )
        assert (lane.status_code, lane.content) == (route.status_code, route.content)
        assert _without_date(lane) == _without_date(route)
    assert http.get(f"/v1/payment-orders/{mine}", headers=bearer(CHECKOUT_A)).json()["id"] == mine


def _without_date(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k != "date"}


class Downstream:
    """The app behind the lane in these tests: it answers 299, so a test sees what was
    handed on."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_the_lane_answers_only_plain_reads_it_finds(served: tuple[httpx.Client, Container]) -> None:
    http, container = served
    mine, theirs = place(http, container), place(http, container, CHECKOUT_B)
    downstream = Downstream()
    lane = OrderReads(downstream, container.db, KEYS)
    handed_on = [
        ("GET", f"/v1/payment-orders/{theirs}", bearer(CHECKOUT_A)),
        ("GET", f"/v1/payment-orders/{uuid.uuid4()}", bearer(OPS)),
        ("GET", f"/v1/payment-orders/{mine}", {}),
        ("GET", f"/v1/payment-orders/{mine}", bearer("wrong-key-123")),
        ("GET", f"/v1/payment-orders/{mine.upper()}", bearer(OPS)),  # not the stored spelling
        ("GET", f"/v1/payment-orders/{mine.replace('-', '')}", bearer(OPS)),
        ("GET", f"/v1/payment-orders/{mine}?version=1", bearer(OPS)),
        ("GET", f"/v1/payment-orders/{mine}/events", bearer(OPS)),
        ("POST", f"/v1/payment-orders/{mine}", bearer(OPS)),
        ("HEAD", f"/v1/payment-orders/{mine}", bearer(OPS)),
        ("GET", "/v1/payment-orders/not-an-order-id-but-36-characters-x", bearer(OPS)),
    ]

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=lane)
        async with httpx.AsyncClient(transport=transport, base_url="http://lane") as client:
            answers = [await client.request(m, p, headers=h) for m, p, h in handed_on]
            answers.append(await client.get(f"/v1/payment-orders/{mine}", headers=bearer(OPS)))
            return answers

    *others, plain = on_a_loop(run())
    assert [r.status_code for r in others] == [299] * len(handed_on)
    assert len(downstream.paths) == len(handed_on)
    assert plain.status_code == 200
    assert plain.json()["id"] == mine
    assert plain.headers["content-type"] == "application/json"


def test_reads_asked_for_at_once_share_one_query(served: tuple[httpx.Client, Container]) -> None:
    http, container = served
    ids = [place(http, container) for _ in range(3)]
    asked = [*ids * 10, str(uuid.uuid4())]
    documents = Documents(container.db)

    async def run() -> list[Any]:
        return await asyncio.gather(*(documents.get(order_id) for order_id in asked))

    found = on_a_loop(run())
    assert [f[1] if f else None for f in found[:3]] == [
        http.get(f"/v1/payment-orders/{order_id}", headers=bearer(OPS)).text for order_id in ids
    ]
    assert found[:-1] == found[:3] * 10
    assert found[-1] is None
    assert documents.queries == 1  # 31 reads, one round trip


def test_a_failed_query_fails_its_reads_and_the_next_query_is_sent(
    served: tuple[httpx.Client, Container],
) -> None:
    http, container = served
    order_id = place(http, container)
    documents = Documents(container.db)

    async def run() -> tuple[Any, Any]:
        with container.db.transaction() as tx:
            tx.execute("ALTER TABLE order_view RENAME TO order_view_away")
        try:
            failed = await asyncio.gather(documents.get(order_id), return_exceptions=True)
        finally:
            with container.db.transaction() as tx:
                tx.execute("ALTER TABLE order_view_away RENAME TO order_view")
        return failed, await documents.get(order_id)

    failed, found = on_a_loop(run())
    assert isinstance(failed[0], Exception)
    assert (
        found is not None
        and found[1] == http.get(f"/v1/payment-orders/{order_id}", headers=bearer(OPS)).text
    )
    assert documents.queries == 2
