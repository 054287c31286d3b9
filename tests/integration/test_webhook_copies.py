"""The PSP's webhook copies of an outcome the API already recorded cost it little: a call
this process saw reach its final outcome is answered `duplicate` without loading the order
(no result can change it: domain.outcomes.accepts), while a call still in flight is applied."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.psp.signature import HEADER, sign
from api.auth import client_id_for
from api.threaded_server import ThreadedServer
from app.application import call_key
from bootstrap.recent import FILE, IN_FLIGHT_FILE, FinalCalls, SharedCalls
from bootstrap.settings import Settings
from domain.order import PaymentOrder
from tests.integration.conftest import FAST, serving
from tests.integration.test_poison_input import (
    CART,
    CHECKOUT,
    SECRET,
    Stack,
    as_,
    webhook,
)
from tests.integration.test_poison_input import stack as poisoned_stack

stack = poisoned_stack  # the same fixture: the API in-process, with keys and a webhook secret


def deliver(stack: Stack, body: bytes) -> dict[str, Any]:
    headers = {HEADER: sign(SECRET, body, int(time.time())), "Content-Type": "application/json"}
    answer = stack.http.post("/v1/webhooks/psp", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    ack: dict[str, Any] = answer.json()
    return ack


def place(stack: Stack, payment_method: str) -> dict[str, Any]:
    created = stack.http.post(
        "/v1/checkouts", json=CART | {"payment_method": payment_method}, headers=as_(CHECKOUT)
    )
    assert created.status_code == 201, created.text
    order: dict[str, Any] = created.json()
    return order


def versions(stack: Stack, order: dict[str, Any]) -> int:
    return len(stack.container.app.history(uuid.UUID(order["id"])))


@pytest.mark.parametrize("payment_method", ["pm_card_visa", "pm_card_declined"])
def test_a_copy_of_a_final_outcome_is_answered_without_loading_the_order(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, payment_method: str
) -> None:
    order = place(stack, payment_method)
    key = call_key(uuid.UUID(order["id"]), "authorize", 1)
    assert key in stack.container.final_calls
    before = versions(stack, order)

    def must_not_load(*args: object) -> None:
        raise AssertionError("the order was loaded for a webhook that cannot change it")

    monkeypatch.setattr(stack.container.app, "apply_webhook", must_not_load)
    assert deliver(stack, webhook(order, 1200))["status"] == "duplicate"
    assert versions(stack, order) == before


@pytest.mark.parametrize("payment_method", ["pm_card_visa", "pm_card_declined"])
def test_on_a_process_that_did_not_record_the_outcome_a_copy_is_loaded_once_then_known(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, payment_method: str
) -> None:
    """Another `serve` process recorded the answer (here: this process, made to forget it).
    The first copy loads the order to find the call final, without asking the log for its
    position; from then on this process answers copies without loading the order."""
    order = place(stack, payment_method)
    key = call_key(uuid.UUID(order["id"]), "authorize", 1)
    monkeypatch.setattr(stack.container, "final_calls", FinalCalls(10))
    app = stack.container.app
    before = versions(stack, order)

    def no_position() -> int:
        raise AssertionError("a position was read for a webhook")

    monkeypatch.setattr(app, "latest_position", no_position)
    assert deliver(stack, webhook(order, 1200))["status"] == "duplicate"
    assert key in stack.container.final_calls
    loads: list[object] = []
    monkeypatch.setattr(app, "apply_webhook", lambda *args: loads.append(args))
    assert deliver(stack, webhook(order, 1200))["status"] == "duplicate"
    assert loads == []
    assert versions(stack, order) == before


@pytest.mark.parametrize("payment_method", ["pm_card_visa", "pm_card_declined"])
def test_with_the_table_of_its_serve_another_process_answers_the_first_copy_at_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, payment_method: str
) -> None:
    """The process that recorded the answer wrote the call into its `serve`'s table
    (bootstrap/recent.py); another (here: this one, with its own memory emptied) finds it
    there, and answers the first copy without loading the order."""
    table = tmp_path / FILE
    monkeypatch.setattr(stack.container, "final_calls", FinalCalls(10, SharedCalls(table)))
    order = place(stack, payment_method)
    key = call_key(uuid.UUID(order["id"]), "authorize", 1)
    monkeypatch.setattr(stack.container, "final_calls", FinalCalls(10, SharedCalls(table)))
    assert key not in stack.container.final_calls.local

    def must_not_load(*args: object) -> None:
        raise AssertionError("the order was loaded for a webhook that cannot change it")

    monkeypatch.setattr(stack.container.app, "apply_webhook", must_not_load)
    before = versions(stack, order)
    assert deliver(stack, webhook(order, 1200))["status"] == "duplicate"
    assert versions(stack, order) == before


def test_a_call_still_in_flight_is_not_taken_for_final(stack: Stack) -> None:
    order = place(stack, "pm_card_processing")
    assert order["status"] == "processing"
    assert call_key(uuid.UUID(order["id"]), "authorize", 1) not in stack.container.final_calls
    body = json.loads(webhook(order, 1200))
    body["data"]["object"]["id"] = (
        stack.container.app.get_order(uuid.UUID(order["id"])).attempt(1).psp_reference
    )
    assert deliver(stack, json.dumps(body).encode())["status"] == "applied"
    assert stack.container.app.get_order(uuid.UUID(order["id"])).status.value == "succeeded"


@pytest.fixture
def patient(
    database_url: str, simulator_server: ThreadedServer, simulator: httpx.Client
) -> Iterator[Stack]:
    """The same API, with a PSP timeout long enough for a slow PSP's answer."""
    settings = Settings(
        database_url=database_url,
        api_keys=f"checkout:{CHECKOUT}",
        webhook_secret=SECRET,
        **FAST | {"psp_timeout_s": 10},
    )
    with (
        serving(settings, simulator_server.url) as (url, container),
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        yield Stack(http, container, simulator)


def _waiting_on_a_slow_psp(
    stack: Stack, simulator: httpx.Client
) -> tuple[uuid.UUID, threading.Thread, list[httpx.Response]]:
    """A checkout, placed on a thread, half a second into its PSP's 1.5 s answer (recorded as
    requested): its order's id, the thread, and where its response will be."""
    simulator.put("/_control/faults", json={"latency_ms": 1500}).raise_for_status()
    key = str(uuid.uuid4())
    placed: list[httpx.Response] = []
    headers = {"Authorization": f"Bearer {CHECKOUT}", "Idempotency-Key": key}
    thread = threading.Thread(
        target=lambda: placed.append(stack.http.post("/v1/checkouts", json=CART, headers=headers))
    )
    thread.start()
    time.sleep(0.5)
    return PaymentOrder.create_id(client_id_for(CHECKOUT), key), thread, placed


def test_a_webhook_that_overtakes_the_answer_waits_for_it_instead_of_racing(
    patient: Stack, simulator: httpx.Client
) -> None:
    stack = patient
    """The PSP's event can arrive while the checkout that made the call is still waiting for
    (or recording) the answer. It waits, then finds the call final: no second record."""
    order_id, thread, placed = _waiting_on_a_slow_psp(stack, simulator)
    early = {"id": str(order_id), "attempts": [{"psp_reference": "pay_early"}]}
    assert deliver(stack, webhook(early, 1200))["status"] == "duplicate"
    thread.join()
    assert placed[0].status_code == 201 and placed[0].json()["status"] == "succeeded"
    kinds = [type(e).__name__ for e in stack.container.app.history(order_id)]
    assert "WebhookApplied" not in kinds


def _deliver_in_thread(stack: Stack, body: bytes) -> tuple[threading.Thread, list[Any]]:
    acks: list[Any] = []
    thread = threading.Thread(target=lambda: acks.append(deliver(stack, body)))
    thread.start()
    return thread, acks


@pytest.mark.parametrize("payment_method", ["pm_card_visa", "pm_card_declined"])
def test_a_webhook_about_another_process_s_call_in_flight_waits_for_its_answer(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, payment_method: str
) -> None:
    """Another process of the same `serve` (here: tables on the same files, written by the
    test) is waiting for the PSP's answer to the call when its webhook lands here. This
    process waits until that one has recorded it, then answers the copy without loading
    the order: no race to the store."""
    order = place(stack, payment_method)
    key = call_key(uuid.UUID(order["id"]), "authorize", 1)
    app = stack.container.app
    monkeypatch.setattr(
        stack.container, "final_calls", FinalCalls(10, SharedCalls(tmp_path / FILE))
    )
    monkeypatch.setattr(app, "in_flight", SharedCalls(tmp_path / IN_FLIGHT_FILE))
    other_final, other_in_flight = (
        SharedCalls(tmp_path / FILE),
        SharedCalls(tmp_path / IN_FLIGHT_FILE),
    )
    other_in_flight.add(key)

    def must_not_load(*args: object) -> None:
        raise AssertionError("the order was loaded for a webhook that cannot change it")

    monkeypatch.setattr(app, "apply_webhook", must_not_load)
    before = versions(stack, order)
    thread, acks = _deliver_in_thread(stack, webhook(order, 1200))
    time.sleep(0.3)
    assert thread.is_alive() and acks == []  # waiting for the other process
    other_final.add(key)  # as that process does: final first, then out of flight
    other_in_flight.discard(key)
    thread.join(5)
    assert acks == [{"status": "duplicate"}]
    assert versions(stack, order) == before


def test_a_call_left_in_flight_by_a_killed_process_holds_its_webhook_the_psp_timeout(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The process that made the call died before its answer was recorded: nobody will
    take the call out of flight. Its webhook waits the PSP timeout (and a second), then
    takes the slow way: it loads the order and applies what it says."""
    order = place(stack, "pm_card_processing")
    key = call_key(uuid.UUID(order["id"]), "authorize", 1)
    app = stack.container.app
    monkeypatch.setattr(app, "in_flight", SharedCalls(tmp_path / IN_FLIGHT_FILE))
    SharedCalls(tmp_path / IN_FLIGHT_FILE).add(key)
    body = json.loads(webhook(order, 1200))
    body["data"]["object"]["id"] = app.get_order(uuid.UUID(order["id"])).attempt(1).psp_reference
    started = time.monotonic()
    assert deliver(stack, json.dumps(body).encode())["status"] == "applied"
    waited = time.monotonic() - started
    assert app.config.psp_timeout_s + 1 <= waited < app.config.psp_timeout_s + 5
    assert app.get_order(uuid.UUID(order["id"])).status.value == "succeeded"


def test_a_checkout_s_call_is_in_flight_from_before_the_psp_call_until_recorded(
    patient: Stack, simulator: httpx.Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stack = patient
    monkeypatch.setattr(stack.container.app, "in_flight", SharedCalls(tmp_path / IN_FLIGHT_FILE))
    seen_elsewhere = SharedCalls(tmp_path / IN_FLIGHT_FILE)
    order_id, thread, placed = _waiting_on_a_slow_psp(stack, simulator)
    assert call_key(order_id, "authorize", 1) in seen_elsewhere
    thread.join()
    assert placed[0].status_code == 201 and placed[0].json()["status"] == "succeeded"
    assert call_key(order_id, "authorize", 1) not in seen_elsewhere
