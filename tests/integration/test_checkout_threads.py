"""Checkouts do not hold a thread while the PSP answers: with a single thread for the
routes that block, a process still has every checkout's PSP call open at once, and each
answers with the PSP's outcome."""

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
from projections.log import EventLog
from tests.integration.conftest import FAST, serving
from tests.integration.test_overload import CART

CHECKOUTS = 12


@pytest.fixture
def api(
    database_url: str, simulator_server: ThreadedServer, simulator: Any
) -> Iterator[tuple[str, Container]]:
    """The API with one thread for blocking routes, in front of a PSP that takes 700 ms."""
    settings = Settings(database_url=database_url, http_threads=1, **FAST | {"psp_timeout_s": 5})
    simulator.put("/_control/faults", json={"latency_ms": 700}).raise_for_status()
    with serving(settings, simulator_server.url) as api:
        yield api


def test_checkouts_wait_for_the_psp_together_not_in_turn(
    api: tuple[str, Container], simulator: httpx.Client
) -> None:
    url, container = api
    simulator.post("/_control/reset").raise_for_status()
    simulator.put("/_control/faults", json={"latency_ms": 700}).raise_for_status()

    def checkout(payment_method: str) -> httpx.Response:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        body = CART | {"payment_method": payment_method}
        return httpx.post(f"{url}/v1/checkouts", json=body, headers=headers, timeout=30)

    methods = ["pm_card_visa", "pm_card_declined"] * (CHECKOUTS // 2)
    with ThreadPoolExecutor(CHECKOUTS) as pool:
        answers = list(pool.map(checkout, methods))
    assert [a.status_code for a in answers] == [201] * CHECKOUTS
    statuses = [a.json()["status"] for a in answers]
    assert statuses == ["succeeded", "requires_payment_method"] * (CHECKOUTS // 2)
    counters = simulator.get("/_control/faults").json()["injected"]
    assert counters["most_in_flight"] >= CHECKOUTS // 2  # one thread would allow 1
    log = EventLog(container.db, container.app.mapper)
    for answer in answers:  # each answer is what the store holds, position and all
        order_id = uuid.UUID(answer.json()["id"])
        assert container.app.get_order(order_id).status.value == answer.json()["status"]
        with container.db.read() as tx:
            history = log.positioned_histories(tx, [order_id])[order_id]
        assert int(answer.headers["Payments-Position"]) == history[-1][0]
