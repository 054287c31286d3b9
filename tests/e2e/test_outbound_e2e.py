"""Outbound webhooks across real processes: `payments serve`, a `payments worker` that is
SIGKILLed mid-delivery, and a receiver process that hangs, fails and comes back. Every
public event still arrives, verified (standardwebhooks), in order per order."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chaos.processes import webhook_receiver
from tests.e2e.conftest import STORES, Stack, start_stack, stop_stack

pytestmark = pytest.mark.e2e
CART = {
    "buyer_id": "buyer-1",
    "currency": "EUR",
    "items": [{"seller_id": "s1", "sku": "mug", "quantity": 1, "unit_amount": 1500}],
    "payment_method": "pm_card_visa",
    "capture_method": "manual",
}


@pytest.fixture(scope="module", params=STORES)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    started = start_stack(
        request,
        tmp_path_factory.mktemp("outbound"),
        request.param,
        workers=1,
        outbound_timeout_s="1",
        outbound_retry_base_s="0.1",
        outbound_retry_max_s="0.5",
    )
    yield started
    stop_stack(started)


@pytest.fixture(scope="module")
def receiver() -> Iterator[httpx.Client]:
    """The receiver as a process of its own (chaos/receiver.py)."""
    process = webhook_receiver().start()
    url = str(process.health_url).removesuffix("/healthz")
    with httpx.Client(base_url=url, timeout=10) as client:
        yield client
    process.stop()


def test_a_worker_killed_mid_delivery_and_a_flaky_receiver_lose_nothing(
    stack: Stack, receiver: httpx.Client
) -> None:
    url = str(receiver.base_url.join("/hooks"))
    created = stack.api.post("/v1/webhook-endpoints", json={"url": url, "events": ["*"]})
    assert created.status_code == 201, created.text
    endpoint = created.json()
    receiver.put(
        "/_control",
        json={
            "secret": endpoint["secret"],
            "script": ["hang", "fail", "hang", "fail"],
            "hang_s": 3,
        },
    )
    orders = []
    for _ in range(4):
        created = stack.api.post(
            "/v1/checkouts", json=CART, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        assert created.status_code == 201
        orders.append(created.json()["id"])
    for order_id in orders[:2]:
        stack.api.post(
            f"/v1/payment-orders/{order_id}/capture", headers={"Idempotency-Key": str(uuid.uuid4())}
        )
    time.sleep(1.0)  # deliveries under way, the receiver hanging on some
    stack.processes["worker-0"].kill()
    stack.processes["worker-0"].start()
    events = _feed(stack)
    expected = [e for e in events if e["order_id"] in orders]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = receiver.get("/_control").json()
        seen = list(dict.fromkeys(e["id"] for e in got["received"]))
        if set(seen) >= {e["id"] for e in expected}:
            break
        time.sleep(0.2)
    assert got["unverified"] == 0
    tries = stack.api.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries").json()
    assert set(seen) >= {e["id"] for e in expected}, tries["data"][:5]
    for order_id in orders:
        mine = [e["id"] for e in expected if e["order_id"] == order_id]
        assert [i for i in seen if i in mine] == mine


def _feed(stack: Stack) -> list[dict[str, Any]]:
    fresh = stack.latest_position()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # wait until the projection has seen everything
        page = stack.api.get("/v1/events", params={"limit": 500}).json()
        positions = stack.store.one("SELECT MIN(position) FROM projection_positions")[0][0]
        if positions is not None and int(positions) >= fresh:
            data: list[dict[str, Any]] = page["data"]
            return data
        time.sleep(0.1)
    raise AssertionError("the projections never caught up")
