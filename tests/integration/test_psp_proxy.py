"""The fault proxy in front of our own simulator: what the client sees, what the PSP did."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from api.threaded_server import ThreadedServer
from psp.proxy import create_proxy

PAYMENT = {
    "amount": 2550,
    "currency": "EUR",
    "payment_method": "pm_card_visa",
    "capture": True,
    "reference": "order-1",
}


@pytest.fixture(scope="module")
def proxy_server(simulator_server: ThreadedServer) -> Iterator[ThreadedServer]:
    app = create_proxy(simulator_server.url)
    server = ThreadedServer(app, lifespan="on", server_header=False, date_header=False)
    yield server.start()
    server.stop()


@pytest.fixture
def proxy(proxy_server: ThreadedServer, simulator: httpx.Client) -> Iterator[httpx.Client]:
    """A client for the proxy, with the proxy and the simulator behind it reset."""
    with httpx.Client(base_url=proxy_server.url, timeout=5) as client:
        client.post("/_control/reset").raise_for_status()
        yield client


def pay(client: httpx.Client, key: str | None = None, **options: Any) -> httpx.Response:
    headers = {"Idempotency-Key": key or str(uuid.uuid4())}
    return client.post("/v1/payments", json=PAYMENT, headers=headers, **options)


def recorded(simulator: httpx.Client, wait_s: float = 2.0) -> list[dict[str, Any]]:
    """The simulator's payments, waiting a little for one to show up."""
    deadline = time.monotonic() + wait_s
    while True:
        payments: list[dict[str, Any]] = simulator.get("/_control/payments").json()["payments"]
        if payments or time.monotonic() > deadline:
            return payments
        time.sleep(0.02)


def injected(proxy: httpx.Client) -> dict[str, int]:
    counts: dict[str, int] = proxy.get("/_control/faults").json()["injected"]
    return counts


def script(proxy: httpx.Client, *faults: str, **settings: Any) -> None:
    proxy.put("/_control/faults", json={"script": list(faults), **settings}).raise_for_status()


def test_a_clean_request_is_forwarded_and_answered_exactly(
    proxy: httpx.Client, simulator: httpx.Client
) -> None:
    answer = pay(proxy, "key-clean")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["content-length"]) == len(answer.content)
    assert answer.json() == pay(simulator, "key-clean").json()
    assert answer.json()["status"] == "captured" and len(recorded(simulator)) == 1
    inquiry = proxy.get("/v1/payments", params={"idempotency_key": "key-clean"})
    assert (inquiry.status_code, inquiry.json()) == (200, answer.json())


def test_the_upstreams_errors_pass_through(proxy: httpx.Client, simulator: httpx.Client) -> None:
    unknown = proxy.get("/v1/payments", params={"idempotency_key": "nobody"})
    direct = simulator.get("/v1/payments", params={"idempotency_key": "nobody"})
    assert (unknown.status_code, unknown.json()) == (direct.status_code, direct.json())
    assert proxy.post("/v1/payments", json=PAYMENT).status_code == 422  # no Idempotency-Key
    assert injected(proxy) == {"none": 2, "forwarded": 2}


@pytest.mark.parametrize(("fault", "status"), [("error_before", 503), ("rate_limit", 429)])
def test_refusals_forward_nothing(
    proxy: httpx.Client, simulator: httpx.Client, fault: str, status: int
) -> None:
    script(proxy, fault, retry_after_s=7)
    answer = pay(proxy)
    assert answer.status_code == status and answer.json()["error"]["processed"] is False
    if fault == "rate_limit":
        assert answer.headers["Retry-After"] == "7"
    assert recorded(simulator, wait_s=0) == []
    assert injected(proxy) == {fault: 1, "forwarded": 0}


def test_a_timeout_is_processed_upstream(proxy: httpx.Client, simulator: httpx.Client) -> None:
    script(proxy, "timeout", hang_ms=400)
    with pytest.raises(httpx.TimeoutException):
        pay(proxy, timeout=0.15)
    assert len(recorded(simulator)) == 1
    assert injected(proxy) == {"timeout": 1, "forwarded": 1}


def test_a_lost_response_is_processed_upstream(
    proxy: httpx.Client, simulator: httpx.Client
) -> None:
    script(proxy, "lost_response")
    with pytest.raises(httpx.RemoteProtocolError):
        pay(proxy)
    assert len(recorded(simulator)) == 1


def test_an_error_after_is_processed_upstream(proxy: httpx.Client, simulator: httpx.Client) -> None:
    script(proxy, "error_after")
    answer = pay(proxy)
    assert answer.status_code == 500 and answer.json()["error"]["processed"] is None
    assert len(recorded(simulator)) == 1


def test_the_report_counts_what_was_injected_and_reset_clears_it(proxy: httpx.Client) -> None:
    script(proxy, "error_before", "rate_limit", "error_after", "none", latency_ms=1, seed=3)
    statuses = [pay(proxy).status_code for _ in range(5)]
    assert statuses == [503, 429, 500, 200, 200]
    report = proxy.get("/_control/faults").json()
    assert report["settings"]["latency_ms"] == 1 and report["settings"]["seed"] == 3
    assert report["injected"] == {
        "error_before": 1,
        "rate_limit": 1,
        "error_after": 1,
        "none": 2,
        "forwarded": 3,
    }
    assert proxy.post("/_control/reset").json() == {"status": "reset"}
    assert proxy.get("/_control/faults").json()["injected"] == {"forwarded": 0}
    assert proxy.get("/_control/faults").json()["settings"]["script"] == []


def test_inquiries_follow_faults_on_inquiries(proxy: httpx.Client) -> None:
    query = {"idempotency_key": "nobody"}
    script(proxy, "error_before", faults_on_inquiries=False)
    assert proxy.get("/v1/payments", params=query).status_code == 404  # forwarded, no fault
    assert injected(proxy) == {"forwarded": 1}
    assert pay(proxy).status_code == 503  # the scripted fault waited for a payment request
    script(proxy, "lost_response")
    assert proxy.get("/v1/payments", params=query).status_code == 503  # no loss after a read


def test_the_proxy_answers_its_own_routes(proxy: httpx.Client) -> None:
    assert proxy.get("/healthz").json() == {"status": "ok"}
    assert proxy.get("/_control/payments").status_code == 404  # never forwarded
    assert injected(proxy) == {"forwarded": 0}
    bad = proxy.put("/_control/faults", json={"timeout_rate": 0.6, "error_after_rate": 0.6})
    assert bad.status_code == 422


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """An upstream that answers with what it received, and two Set-Cookie headers."""
    body = (await receive())["body"]
    seen = {
        "method": scope["method"],
        "raw_path": scope["raw_path"].decode(),
        "query": scope["query_string"].decode(),
        "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
        "body": body.decode(),
    }
    headers = [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"x-upstream", b"yes")]
    headers += [(b"connection", b"x-secret"), (b"x-secret", b"hop")]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(seen).encode()})


def test_requests_and_answers_cross_unchanged_but_for_hop_by_hop_headers() -> None:
    upstream = ThreadedServer(echo).start()
    upstream_host = f"127.0.0.1:{upstream.port}"
    server = ThreadedServer(create_proxy(upstream.url + "/")).start()
    try:
        answer = httpx.patch(
            f"{server.url}/v1/a%2Fb/x?q=1&q=%20",
            content=b"payload",
            headers={"X-Custom": "kept", "Connection": "keep-alive, X-Drop", "X-Drop": "no"},
        )
    finally:
        server.stop()
        upstream.stop()
    seen = answer.json()
    assert (answer.status_code, seen["method"], seen["body"]) == (201, "PATCH", "payload")
    assert (seen["raw_path"], seen["query"]) == ("/v1/a%2Fb/x", "q=1&q=%20")
    assert seen["headers"]["x-custom"] == "kept" and "x-drop" not in seen["headers"]
    assert seen["headers"]["host"] == upstream_host
    assert answer.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert answer.headers["x-upstream"] == "yes" and "x-secret" not in answer.headers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_an_upstream_that_is_down_is_a_502() -> None:
    server = ThreadedServer(create_proxy(f"http://127.0.0.1:{free_port()}")).start()
    try:
        answer = httpx.post(f"{server.url}/v1/payments", json=PAYMENT, timeout=5)
    finally:
        server.stop()
    assert answer.status_code == 502 and answer.json()["error"]["type"] == "bad_gateway"
