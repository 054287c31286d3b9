"""The checkout's fast lane (api/checkout_lane.py): it answers every checkout it takes as
the route does (201, replays, conflicts, every error the route's code raises), and hands
each request the route would refuse, or judge by rules the lane does not repeat, on to
FastAPI with its body intact, before anything is recorded (real store and simulator; the
API served over loopback HTTP)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from eventsourcing.persistence import PersistenceError
from starlette.types import Receive, Scope, Send

import api.checkout_lane
import api.routes.checkouts
from api.checkout_lane import CheckoutLane
from api.main import create_app
from api.problems import Problem
from bootstrap.composition import Container
from domain.errors import InvalidInput, OrderNotFound
from tests.integration.test_order_reads import CHECKOUT_A as CHECKOUT
from tests.integration.test_order_reads import OPS, on_a_loop
from tests.integration.test_order_reads import served as api_with_keys

CART: dict[str, Any] = {
    "buyer_id": "buyer-1",
    "currency": "EUR",
    "items": [{"seller_id": "s1", "sku": "x", "quantity": 2, "unit_amount": 1200}],
    "payment_method": "pm_card_visa",
}
served = api_with_keys  # the same fixture: the API over loopback, with checkout and ops keys
ROUTE = {"via": "route"}
"""A query string takes a request past the lane, to FastAPI's route (which ignores it)."""
VARYING = re.compile(
    r'"(?:id|order_id|psp_reference|[a-z_]*_at|expires|created|updated)":"[^"]*"|'
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
"""What differs between two orders placed alike: ids, PSP references, times."""


def headers(key: str | None = None, token: str = CHECKOUT) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": key or str(uuid.uuid4())}


def twice(
    http: httpx.Client, body: Any, lane_key: str | None = None, route_key: str | None = None
) -> tuple[httpx.Response, httpx.Response]:
    """The same checkout through the lane and through the route."""
    lane = http.post("/v1/checkouts", json=body, headers=headers(lane_key))
    route = http.post("/v1/checkouts", json=body, headers=headers(route_key), params=ROUTE)
    return lane, route


def alike(response: httpx.Response) -> tuple[int, dict[str, str], str]:
    """A response without what two orders placed alike cannot share."""
    varying = {"date", "location", "payments-position", "content-length"}
    kept = {k: v for k, v in response.headers.items() if k not in varying}
    return response.status_code, kept, VARYING.sub("*", response.text)


def exact(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    return (
        response.status_code,
        {k: v for k, v in response.headers.items() if k != "date"},
        (response.content),
    )


@pytest.mark.parametrize(
    "payment_method", ["pm_card_visa", "pm_card_declined", "pm_card_processing"]
)
def test_a_new_checkout_is_answered_as_the_route_answers_it(
    served: tuple[httpx.Client, Container], payment_method: str
) -> None:
    http, _ = served
    lane, route = twice(http, CART | {"payment_method": payment_method})
    assert lane.status_code == 201, lane.text
    assert alike(lane) == alike(route)
    assert lane.headers["location"] == f"/v1/payment-orders/{lane.json()['id']}"
    assert lane.json()["status"] == route.json()["status"]


def test_replays_and_conflicts_are_answered_byte_for_byte_as_the_route_answers_them(
    served: tuple[httpx.Client, Container],
) -> None:
    http, container = served
    key = str(uuid.uuid4())
    first = http.post("/v1/checkouts", json=CART, headers=headers(key))
    assert first.status_code == 201
    other = CART | {"buyer_id": "someone-else"}
    for body, status in ((CART, 200), (other, 422)):  # a replay; the key with another body
        lane = http.post("/v1/checkouts", json=body, headers=headers(key))
        route = http.post("/v1/checkouts", json=body, headers=headers(key), params=ROUTE)
        assert lane.status_code == status, lane.text
        assert exact(lane) == exact(route)
    assert container.app.get_order(uuid.UUID(first.json()["id"])).attempt(1) is not None


@pytest.mark.parametrize(
    "error",
    [
        Problem(409, "request-in-flight", "wait", headers={"Retry-After": "1"}),
        InvalidInput("must be something else", field="items"),
        OrderNotFound("no such order"),
        PersistenceError("the store went away"),
        RuntimeError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_error_from_the_routes_code_is_answered_by_the_apps_handler_for_it(
    served: tuple[httpx.Client, Container],
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
) -> None:
    _, container = served

    async def failing(*args: object) -> None:
        raise error

    monkeypatch.setattr(api.checkout_lane, "place", failing)
    monkeypatch.setattr(api.routes.checkouts, "place", failing)
    app = create_app(container)  # in this process: an unexpected error is the app's to answer

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return [
                await client.post("/v1/checkouts", json=CART, headers=headers("k"), params=p)
                for p in ({}, ROUTE)
            ]

    lane, route = on_a_loop(run())
    assert lane.status_code == route.status_code >= 400
    assert lane.headers["content-type"] == "application/problem+json"
    assert exact(lane) == exact(route)
    assert "Traceback" not in lane.text and "a bug" not in lane.text


def test_a_chunked_body_over_the_limit_is_413_on_either_path(
    served: tuple[httpx.Client, Container],
) -> None:
    """Without a Content-Length the limit is found while the body streams in: FastAPI used
    to turn that into a 400 of its own (the body "could not be parsed")."""
    http, container = served
    before = container.app.latest_position()
    big = json.dumps(CART | {"buyer_id": "b" * container.settings.max_body_bytes}).encode()
    for params in ({}, ROUTE):
        chunks = iter([big[:1000], big[1000:]])  # an iterator: sent chunked
        answer = http.post("/v1/checkouts", content=chunks, headers=headers(), params=params)
        assert answer.status_code == 413, answer.text
        assert answer.json()["type"].endswith("body-too-large")
    assert container.app.latest_position() == before


class Downstream:
    """The app behind the lane in these tests: it reads the whole body and answers 299,
    so a test sees what was handed on, and whole."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.bodies.append(b"".join(chunks))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_the_lane_hands_on_every_request_it_does_not_take_with_its_body(
    served: tuple[httpx.Client, Container],
) -> None:
    _, container = served
    downstream = Downstream()
    lane = CheckoutLane(downstream, container)
    body = json.dumps(CART).encode()
    plain = {"Content-Type": "application/json"}
    handed_on: list[tuple[str, str, list[tuple[bytes, bytes]], bytes]] = [
        ("POST", "/v1/checkouts", [(b"Content-Type", b"application/json")], body),  # no key
        ("POST", "/v1/checkouts", _h(plain, key=""), body),
        ("POST", "/v1/checkouts", _h(plain, key="has space"), body),
        ("POST", "/v1/checkouts", _h(plain, key="k" * 256), body),
        ("POST", "/v1/checkouts", _h(plain, key="\u00e9t\u00e9".encode("latin-1")), body),
        ("POST", "/v1/checkouts", [*_h(plain), (b"Idempotency-Key", b"second")], body),
        ("POST", "/v1/checkouts", _h({}), body),  # no Content-Type
        ("POST", "/v1/checkouts", _h({"Content-Type": "application/json; charset=utf-8"}), body),
        ("POST", "/v1/checkouts", _h({"Content-Type": "text/plain"}), body),
        ("POST", "/v1/checkouts", [*_h(plain), (b"Content-Type", b"application/json")], body),
        ("POST", "/v1/checkouts?x=1", _h(plain), body),
        ("POST", "/v1/checkouts/", _h(plain), body),
        ("PUT", "/v1/checkouts", _h(plain), body),
        ("POST", "/v1/checkouts", _h(plain, token=OPS), body),  # not the checkout role
        ("POST", "/v1/checkouts", _h(plain, token="wrong-key-123"), body),
        (
            "POST",
            "/v1/checkouts",
            [*_h(plain), (b"Authorization", b"Bearer " + CHECKOUT.encode())],
            body,
        ),
        ("POST", "/v1/checkouts", _h(plain), b""),
        ("POST", "/v1/checkouts", _h(plain), b"{not json"),
        ("POST", "/v1/checkouts", _h(plain), b"\xff\xfe"),
        ("POST", "/v1/checkouts", _h(plain), b"[]"),
        ("POST", "/v1/checkouts", _h(plain), json.dumps(CART | {"extra": 1}).encode()),
        ("POST", "/v1/checkouts", _h(plain), json.dumps(CART | {"currency": "XXX"}).encode()),
        ("POST", "/v1/checkouts", _h(plain), json.dumps(CART | {"items": []}).encode()),
        ("POST", "/v1/checkouts", _h(plain), json.dumps({**CART, "buyer_id": 7}).encode()),
    ]
    before = container.app.latest_position()

    async def run() -> tuple[list[httpx.Response], int, httpx.Response]:
        transport = httpx.ASGITransport(app=lane)
        async with httpx.AsyncClient(transport=transport, base_url="http://lane") as client:
            answers = []
            for method, path, pairs, content in handed_on:
                answers.append(await client.request(method, path, headers=pairs, content=content))
            after = container.app.latest_position()
            taken = await client.post("/v1/checkouts", headers=_h(plain), content=body)
            return answers, after, taken

    others, after, taken = on_a_loop(run())
    assert [r.status_code for r in others] == [299] * len(handed_on)
    assert downstream.bodies == [content for *_, content in handed_on]
    assert after == before  # the lane recorded nothing for them
    assert taken.status_code == 201, taken.text
    assert container.app.latest_position() > before
    assert len(downstream.bodies) == len(handed_on)


def _h(
    extra: dict[str, str], key: str | bytes = "key-1", token: str = CHECKOUT
) -> list[tuple[bytes, bytes]]:
    """Headers as bytes: a key that is not ASCII goes as it is."""
    raw = key if isinstance(key, bytes) else key.encode()
    pairs = [(b"Authorization", f"Bearer {token}".encode()), (b"Idempotency-Key", raw)]
    return pairs + [(k.encode(), v.encode()) for k, v in extra.items()]
