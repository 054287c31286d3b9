"""Overload: past `PAYMENTS_MAX_IN_FLIGHT` requests in progress, a fast 503 with Retry-After,
before anything is recorded; the accepted checkouts finish, and the service takes new ones
the moment the load drops."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from api.threaded_server import ThreadedServer
from bootstrap.composition import Container
from bootstrap.settings import Settings
from tests.integration.conftest import FAST, serving

CART = {
    "buyer_id": "buyer-1",
    "currency": "EUR",
    "items": [{"seller_id": "s1", "sku": "mug", "quantity": 1, "unit_amount": 1000}],
    "payment_method": "pm_card_visa",
}


@pytest.fixture
def api(
    database_url: str, simulator_server: ThreadedServer, simulator: Any
) -> Iterator[tuple[str, Container]]:
    """The API with room for 3 requests at a time, in front of a PSP that takes 400 ms."""
    settings = Settings(database_url=database_url, max_in_flight=3, **FAST | {"psp_timeout_s": 3})
    simulator.put("/_control/faults", json={"latency_ms": 400}).raise_for_status()
    with serving(settings, simulator_server.url) as api:
        yield api


def checkout(url: str) -> httpx.Response:
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    return httpx.post(f"{url}/v1/checkouts", json=CART, headers=headers, timeout=10)


def test_requests_past_the_limit_are_shed_fast_and_record_nothing(
    api: tuple[str, Container],
) -> None:
    url, container = api
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: checkout(url), range(10)))
    accepted = [a for a in answers if a.status_code == 201]
    shed = [a for a in answers if a.status_code == 503]
    assert len(accepted) + len(shed) == 10 and 1 <= len(accepted) <= 3 and shed
    for answer in shed:
        assert answer.headers["Retry-After"] == "1"
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"].endswith("overloaded")
        assert answer.elapsed.total_seconds() < 0.4  # refused before the PSP was called
    assert all(a.json()["status"] == "succeeded" for a in accepted)
    table = container.db.events_table
    stored = container.db.one(f"SELECT DISTINCT originator_id FROM {table}")  # noqa: S608
    ids = {str(uuid.UUID(str(row[0]))) for row in stored}  # SQLite stores hex
    assert ids == {a.json()["id"] for a in accepted}  # a shed request left no order behind
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert f"payments_requests_shed_total {float(len(shed))}" in metrics.splitlines()
    assert checkout(url).status_code == 201  # the load is gone: taken at once
