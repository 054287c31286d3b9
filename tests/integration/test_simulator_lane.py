"""The simulator's fast lane (psp/payments_lane.py) answers `POST /v1/payments` exactly as
FastAPI's route does, faults included, and hands everything else on with its body intact."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from api.threaded_server import ThreadedServer
from psp.payments_lane import PaymentsLane, _base_url
from psp.simulator import PaymentIn, create_simulator

PAY = {"amount": 1250, "currency": "EUR", "payment_method": "pm_card_visa", "reference": "o-1"}
JSON = {"Content-Type": "application/json"}
REQUESTS: list[tuple[str, dict[str, str], bytes | dict[str, Any]]] = [
    ("/v1/payments", {"Idempotency-Key": "k-1"}, PAY),
    ("/v1/payments", {"Idempotency-Key": "k-1"}, PAY),  # a replay
    ("/v1/payments", {"Idempotency-Key": "k-1"}, PAY | {"amount": 99}),  # the key reused
    ("/v1/payments", {"Idempotency-Key": "k-2"}, PAY | {"payment_method": "pm_card_declined"}),
    ("/v1/payments", {"Idempotency-Key": "k-3"}, PAY | {"payment_method": "pm_card_processing"}),
    (
        "/v1/payments",
        {"Idempotency-Key": "k-4"},
        PAY | {"payment_method": "pm_card_threeDSecure2Required", "return_url": "https://m/r"},
    ),
    ("/v1/payments", {"Idempotency-Key": "k-5"}, PAY | {"capture": False}),
    ("/v1/payments?x=1", {"Idempotency-Key": "k-6"}, PAY),
    ("/v1/payments", {}, PAY),
    ("/v1/payments", {"Idempotency-Key": ""}, PAY),
    ("/v1/payments", {"Idempotency-Key": "k" * 256}, PAY),
    ("/v1/payments", {"Idempotency-Key": "k" * 255}, PAY),
    ("/v1/payments", {"Idempotency-Key": "k-7"}, PAY | {"amount": 0}),
    ("/v1/payments", {"Idempotency-Key": "k-8"}, PAY | {"extra": 1}),
    ("/v1/payments", {"Idempotency-Key": "k-9"}, b'{"amount": 1,'),
    ("/v1/payments", {"Idempotency-Key": "k-10"}, b""),
    ("/v1/payments", {"Idempotency-Key": "k-11"}, b"\xff\xfe"),
    ("/v1/payments", {"Idempotency-Key": "k-12", "Content-Type": "text/plain"}, b"{}"),
    ("/v1/payments", {"Idempotency-Key": "k-13"}, PAY | {"amount": "12"}),
]


@pytest.fixture
def servers() -> Iterator[tuple[str, str]]:
    """The simulator with its lane and without it, each over real HTTP."""
    started = [ThreadedServer(create_simulator(fast_lane=lane)).start() for lane in (True, False)]
    yield started[0].url, started[1].url
    for server in started:
        server.stop()


def answers(base: str, faults: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What a client sees for each of REQUESTS after `faults`: status, headers but the date,
    body (ids and the server's own address made alike), or the error it met."""
    seen: list[tuple[Any, ...]] = []
    with httpx.Client(base_url=base, timeout=5.0) as client:
        client.post("/_control/reset")
        client.put("/_control/faults", json=faults).raise_for_status()
        for path, headers, body in REQUESTS:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                response = client.post(path, content=content, headers=JSON | headers)
            except httpx.HTTPError as error:
                seen.append((type(error).__name__,))
                continue
            text = re.sub(r"pay_[0-9a-f]{24}", "pay_ID", response.text).replace(base, "BASE")
            text = re.sub(r'(_expires_at":)[0-9]+', r"\1T", text)  # a clock reading
            kept = sorted((k, v) for k, v in response.headers.items() if k != "date")
            seen.append((response.status_code, kept, text))
    return seen


@pytest.mark.parametrize(
    "faults",
    [
        {"latency_ms": 0},
        {"seed": 7, "script": ["rate_limit", "error_before", "error_after", "none", "timeout"]},
        {"seed": 3, "error_after_rate": 0.3, "rate_limit_rate": 0.2, "hang_ms": 10},
        {"seed": 5, "amount_mismatch_rate": 0.5, "lost_response_rate": 0.2},
    ],
)
def test_the_lane_answers_as_the_route(servers: tuple[str, str], faults: dict[str, Any]) -> None:
    lane, route = servers
    assert answers(lane, faults | {"hang_ms": 10}) == answers(route, faults | {"hang_ms": 10})


def test_what_the_client_sees_is_what_was_asked(servers: tuple[str, str]) -> None:
    """The comparison above compares real answers (statuses of every kind come back) of a
    simulator with the lane and one without."""
    statuses = {a[0] for a in answers(servers[0], {"latency_ms": 0})}
    assert {200, 409, 422} <= statuses
    lanes = [
        [m.cls for m in create_simulator(fast_lane=lane).user_middleware] for lane in (True, False)
    ]
    assert lanes == [[PaymentsLane], []]


class Inner:
    """The app behind the lane: records what reached it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def call(
    lane: PaymentsLane,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    disconnect_after: int | None = None,
) -> list[Message]:
    """One request through the lane, its body in `chunks` (the client gone after the first
    `disconnect_after` of them); the messages it sent."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/payments",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("127.0.0.1", 9),
        "headers": headers,
    }
    parts = chunks[:disconnect_after]
    incoming: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(parts)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    result: list[Message] = []
    thread = threading.Thread(  # Playwright may run a loop on this thread already
        target=lambda: result.extend(asyncio.run(_run(lane, scope, receive, send, sent)))
    )
    thread.start()
    thread.join()
    return result


async def _run(
    lane: PaymentsLane, scope: Scope, receive: Receive, send: Send, sent: list[Message]
) -> list[Message]:
    await lane(scope, receive, send)
    return sent


def test_a_plain_payment_never_reaches_the_route_and_others_reach_it_whole() -> None:
    inner, charged = Inner(), list[Any]()
    lane = PaymentsLane(inner, charge=_answering(charged), model=PaymentIn)
    json_key = [(b"content-type", b"application/json"), (b"idempotency-key", b"k")]
    body = b'{"amount": 5, "currency": "EUR", "payment_method": "pm", "reference": "r"}'
    sent = call(lane, [*json_key, (b"host", b"psp.test:81")], [body[:9], body[9:]])
    assert inner.bodies == []
    payment = {"amount": 5, "currency": "EUR", "payment_method": "pm", "reference": "r"}
    assert charged == [(payment | {"capture": True}, "k", "http://psp.test:81")]
    assert sent[0]["status"] == 201
    handed_on = [
        (json_key, [b'{"amount": 0}']),  # the model refuses it
        (json_key[:1], [body]),  # no key
        ([*json_key, (b"idempotency-key", b"k2")], [body]),  # two keys
        ([(b"content-type", b"text/plain"), json_key[1]], [body[:9], body[9:]]),
    ]
    for headers, chunks in handed_on:
        assert call(lane, headers, chunks)[0]["status"] == 299
    assert inner.bodies == [b'{"amount": 0}', body, body, body]
    two_types = [(b"content-type", b"text/plain"), *json_key]
    assert call(lane, two_types, [body])[0]["status"] == 299  # Starlette reads the first
    assert len(charged) == 1


def test_a_body_cut_short_by_a_disconnect_is_handed_on_unfinished() -> None:
    """The route would see a request that never finished (and charge nothing): so must it."""
    seen: list[Message] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.extend([await receive(), await receive()])
        await send({"type": "http.response.start", "status": 299, "headers": []})

    charged: list[Any] = []
    lane = PaymentsLane(inner, charge=_answering(charged), model=PaymentIn)
    body = b'{"amount": 5, "currency": "EUR", "payment_method": "pm", "reference": "r"}'
    headers = [(b"content-type", b"application/json"), (b"idempotency-key", b"k")]
    sent = call(lane, headers, [body, b""], disconnect_after=1)
    assert charged == []
    assert sent[0]["status"] == 299
    assert seen == [
        {"type": "http.request", "body": body, "more_body": True},
        {"type": "http.disconnect"},
    ]


def _answering(charged: list[Any]) -> Any:
    async def charge(payment: dict[str, Any], key: str, base: str) -> Any:
        charged.append((payment, key, base))

        async def response(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 201, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        return response

    return charge


@pytest.mark.parametrize(
    ("server", "host", "expected"),
    [
        (("127.0.0.1", 80), None, "http://127.0.0.1"),
        (("127.0.0.1", 8080), None, "http://127.0.0.1:8080"),
        (("127.0.0.1", 8080), b"psp.example", "http://psp.example"),
        (("127.0.0.1", 8080), b"psp.example:9", "http://psp.example:9"),
        (("127.0.0.1", 8080), b"[::1]:9", "http://[::1]:9"),
        (("127.0.0.1", 8080), b"psp.example:9/", "http://127.0.0.1:8080"),  # Starlette's rule
        (("127.0.0.1", 8080), b"a b", "http://127.0.0.1:8080"),
        (("127.0.0.1", 8080), b"psp.example:65535", "http://psp.example:65535"),
        (("127.0.0.1", 8080), b"psp.example:65536", "http://127.0.0.1:8080"),
        (("127.0.0.1", 8080), b"psp.example:99999", "http://127.0.0.1:8080"),
        (("127.0.0.1", 8080), b"psp.example:", "http://127.0.0.1:8080"),
        (("127.0.0.1", 8080), b"[zz::1]:9", "http://127.0.0.1:8080"),
        (None, None, ""),
    ],
)
def test_the_base_url_is_starlette_s(
    server: tuple[str, int] | None, host: bytes | None, expected: str
) -> None:
    scope = {
        "type": "http",
        "scheme": "http",
        "server": server,
        "path": "/v1/payments",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", host)] if host else [],
    }
    assert _base_url(scope) == expected == str(Request(scope).base_url).rstrip("/")
