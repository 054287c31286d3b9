"""The PSP webhooks' fast lane (api/webhook_lane.py): every notification it takes is answered
byte for byte as FastAPI's route answers it (applied, duplicate, ignored, unsigned,
malformed, errors from the route's code), and any other request goes on to FastAPI (real
store and simulator; the API served over loopback HTTP)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

import api.routes.webhooks
import api.webhook_lane
from adapters.psp.signature import HEADER, sign
from api.main import create_app
from api.problems import Problem
from api.webhook_lane import WebhookLane
from domain.errors import OrderNotFound
from tests.integration.test_checkout_lane import ROUTE, exact
from tests.integration.test_order_reads import on_a_loop
from tests.integration.test_poison_input import SECRET, Stack, webhook
from tests.integration.test_poison_input import stack as poisoned_stack
from tests.integration.test_webhook_copies import place

stack = poisoned_stack  # the same fixture: the API in-process, with keys and a webhook secret


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {HEADER: sign(secret, body, int(time.time())), "Content-Type": "application/json"}


def in_flight(stack: Stack) -> bytes:
    """A signed-to-be notification that completes a payment the PSP left processing."""
    order = place(stack, "pm_card_processing")
    body = json.loads(webhook(order, 1200))
    reference = stack.container.app.get_order(uuid.UUID(order["id"])).attempt(1).psp_reference
    body["data"]["object"]["id"] = reference
    return json.dumps(body).encode()


def test_notifications_are_answered_byte_for_byte_as_the_route_answers_them(
    stack: Stack,
) -> None:
    http = stack.http
    applied = []
    for params in ({}, ROUTE):  # one order each: the first notification of each applies
        body = in_flight(stack)
        applied.append(
            http.post("/v1/webhooks/psp", content=body, headers=signed(body), params=params)
        )
    assert applied[0].json() == {"status": "applied"}
    assert exact(applied[0]) == exact(applied[1])
    unknown = webhook({"id": str(uuid.uuid4()), "attempts": [{"psp_reference": "pay_nobody"}]}, 5)
    cases: list[tuple[str, bytes, dict[str, str]]] = [
        ("/v1/webhooks/psp", body, signed(body)),  # a copy: duplicate
        ("/v1/webhooks/psp", unknown, signed(unknown)),  # nobody's payment: ignored
        ("/v1/webhooks/psp", body, signed(body, "another-secret-0123456789")),  # 401
        ("/v1/webhooks/psp", body, {"Content-Type": "application/json"}),  # unsigned
        ("/v1/webhooks/psp", b"{not json", signed(b"{not json")),  # 400
        ("/v1/webhooks/psp", b"[]", signed(b"[]")),
        ("/v1/webhooks/stripe", body, {"Stripe-Signature": "t=1,v1=00"}),
        ("/v1/webhooks/stripe", body, {}),
    ]
    for path, content, headers in cases:
        lane = http.post(path, content=content, headers=headers)
        route = http.post(path, content=content, headers=headers, params=ROUTE)
        assert exact(lane) == exact(route), (path, lane.text, route.text)
    answers = [http.post(p, content=c, headers=h).status_code for p, c, h in cases]
    assert answers[:2] == [200, 200] and 401 in answers and 400 in answers


@pytest.mark.parametrize(
    "error",
    [
        Problem(503, "psp-unavailable", "ask again", headers={"Retry-After": "5"}),
        OrderNotFound("no such order"),
        RuntimeError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_error_from_the_routes_code_is_answered_by_the_apps_handler_for_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    async def failing(*args: object) -> None:
        raise error

    monkeypatch.setattr(api.webhook_lane, "apply_notification", failing)
    monkeypatch.setattr(api.routes.webhooks, "apply_notification", failing)
    app = create_app(stack.container)  # in this process: an unexpected error is the app's
    body = b"{}"

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return [
                await client.post("/v1/webhooks/psp", content=body, headers=signed(body), params=p)
                for p in ({}, ROUTE)
            ]

    lane, route = on_a_loop(run())
    assert lane.status_code == route.status_code >= 400
    assert exact(lane) == exact(route)
    assert "a bug" not in lane.text


class Downstream:
    """The app behind the lane here: answers 299, so a test sees what was handed on."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_the_lane_takes_only_plain_webhook_posts(stack: Stack) -> None:
    downstream = Downstream()
    lane = WebhookLane(downstream, stack.container.app)
    handed_on = [
        ("GET", "/v1/webhooks/psp"),
        ("PUT", "/v1/webhooks/stripe"),
        ("POST", "/v1/webhooks/psp?x=1"),
        ("POST", "/v1/webhooks/psp/"),
        ("POST", "/v1/webhooks/other"),
        ("POST", "/v1/checkouts"),
    ]

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=lane)
        async with httpx.AsyncClient(transport=transport, base_url="http://lane") as client:
            return [(await client.request(m, p, content=b"{}")).status_code for m, p in handed_on]

    assert on_a_loop(run()) == [299] * len(handed_on)
    assert len(downstream.seen) == len(handed_on)
