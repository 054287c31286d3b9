"""The PSP client's two halves agree: `authorize` (httpx, the worker's threads) and
`authorize_async` (aiohttp, checkouts on the event loop) class every answer and every
failure of a real socket the same way: a result, an outage that processed nothing, or one
whose outcome is unknown."""

from __future__ import annotations

import asyncio
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from adapters.psp.simulator import HttpPSP
from chaos.processes import free_port
from domain.psp import (
    AuthorizeRequest,
    PSPConnectionLost,
    PSPOutage,
    PSPRateLimited,
    PSPRejected,
    PSPResult,
    PSPServerError,
    PSPTimeout,
    PSPUnavailable,
)

REQUEST = AuthorizeRequest(
    "key-1", "order-1", 1000, "EUR", "pm_card_visa", capture=True, return_url="https://a.test/r"
)
PAYMENT = {"id": "pay_1", "status": "captured", "amount": 1000, "currency": "EUR"}
TIMEOUT_S = 0.5


def http(status: int, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class ScriptedPSP(socketserver.ThreadingTCPServer):
    """Answers each request with `answer` (raw bytes), or hangs, or hangs up; keeps what it
    was sent."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.answer: bytes | str = b""
        self.received: list[bytes] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(socketserver.BaseRequestHandler):
    server: ScriptedPSP

    def handle(self) -> None:
        while request := _read_request(self.request):
            self.server.received.append(request)
            answer = self.server.answer
            if answer == "hang":
                time.sleep(TIMEOUT_S * 3)
                return
            if answer == "hang up":
                return
            assert isinstance(answer, bytes)
            self.request.sendall(answer)


def _read_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedPSP]:
    server = ScriptedPSP()
    yield server
    server.shutdown()


def both(url: str) -> Iterator[tuple[str, Callable[[], PSPResult]]]:
    """Each half of the client, as a call that authorizes REQUEST."""
    psp = HttpPSP(url, TIMEOUT_S)

    async def on_a_loop() -> PSPResult:
        try:
            return await psp.authorize_async(REQUEST)
        finally:
            await psp.close_async()

    def on_its_own_thread() -> PSPResult:  # a loop of its own, whatever the caller runs
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, on_a_loop()).result()

    yield "httpx", lambda: psp.authorize(REQUEST)
    yield "aiohttp", on_its_own_thread
    psp.close()


def outcome(call: Callable[[], PSPResult]) -> tuple[object, ...]:
    """What a call came back with, in terms that must not depend on the client."""
    try:
        result = call()
    except PSPRateLimited as error:
        return (PSPRateLimited, error.retry_after_s)
    except PSPServerError as error:
        return (PSPServerError, error.status_code)
    except PSPRejected as error:
        return (PSPRejected, error.status_code, str(error))
    except PSPOutage as error:
        return (type(error),)
    return (PSPResult, result)


def test_both_halves_send_the_same_request(scripted: ScriptedPSP) -> None:
    scripted.answer = http(200, json.dumps(PAYMENT).encode())
    scripted.received.clear()
    for _, call in both(scripted.url):
        call()
    bodies = [json.loads(r.partition(b"\r\n\r\n")[2]) for r in scripted.received]
    assert (
        bodies[0]
        == bodies[1]
        == {
            "amount": 1000,
            "currency": "EUR",
            "payment_method": "pm_card_visa",
            "capture": True,
            "reference": "order-1",
            "return_url": "https://a.test/r",
        }
    )
    for request in scripted.received:
        assert request.startswith(b"POST /v1/payments HTTP/1.1")
        assert b"\r\nidempotency-key: key-1\r\n" in request.lower()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (http(200, json.dumps(PAYMENT).encode()), PSPResult),
        (http(200, json.dumps(PAYMENT | {"status": "declined"}).encode()), PSPResult),
        (http(429, b"{}", "Retry-After: 3"), PSPRateLimited),
        (http(429, b"", "Retry-After: \xd9\xa3"), PSPRateLimited),
        (http(503, b'{"error": {"processed": false}}'), PSPUnavailable),
        (http(503, b'{"error": {}}'), PSPServerError),
        (http(500, b"oops"), PSPServerError),
        (http(200, b"not json"), PSPServerError),
        (http(200, b"\xff\xfe"), PSPServerError),
        (http(200, b'{"id": "pay_1"}'), PSPServerError),
        (http(200, b"[]"), PSPServerError),
        (http(402, b'{"error": {"type": "card_error", "message": "no"}}'), PSPRejected),
        (http(400, b'{"error": "flat"}'), PSPRejected),
        ("hang", PSPTimeout),
        ("hang up", PSPConnectionLost),
    ],
)
def test_both_halves_class_every_answer_alike(
    scripted: ScriptedPSP, answer: bytes | str, expected: type
) -> None:
    scripted.answer = answer
    outcomes = {name: outcome(call) for name, call in both(scripted.url)}
    assert outcomes["httpx"] == outcomes["aiohttp"], outcomes
    assert outcomes["httpx"][0] is expected


def test_nobody_listening_means_nothing_was_processed() -> None:
    outcomes = {name: outcome(call) for name, call in both(f"http://127.0.0.1:{free_port()}")}
    assert outcomes == {"httpx": (PSPUnavailable,), "aiohttp": (PSPUnavailable,)}
