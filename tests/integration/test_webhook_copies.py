"""The PSP's webhook copies of an outcome the API already recorded cost it little: a call
this process (or another of its `serve`) saw reach its final outcome is answered `duplicate`
without loading the order (no result can change it: domain.outcomes.accepts), while a call
whose outcome is not final yet (processing) is applied. A webhook that overtakes the answer
of a checkout still waiting on the PSP, on this process or another (the calls in flight),
waits for it rather than racing it to the store."""

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
from bootstrap.recent import FILE, IN_FLIGHT_FILE, CallsInFlight, FinalCalls, SharedCalls
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


def _must_not_load(*args: object) -> None:
    raise AssertionError("the order was loaded for a webhook that cannot change it")


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

    monkeypatch.setattr(stack.container.app, "apply_webhook", _must_not_load)
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

    monkeypatch.setattr(stack.container.app, "apply_webhook", _must_not_load)
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
    """The PSP's event can arrive while the checkout that made the call is still waiting for
    (or recording) the answer. It waits, then finds the call final: no second record."""
    stack = patient
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


def _in_flight_elsewhere(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[SharedCalls, CallsInFlight]:
    """This process's tables on files that another process of its `serve` maps too (here:
    the test, through tables of its own on the same files): that process's final calls
    and calls in flight."""
    table, in_flight = tmp_path / FILE, tmp_path / IN_FLIGHT_FILE
    monkeypatch.setattr(stack.container, "final_calls", FinalCalls(10, SharedCalls(table)))
    monkeypatch.setattr(stack.container.app, "in_flight", CallsInFlight(in_flight))
    return SharedCalls(table), CallsInFlight(in_flight)


@pytest.mark.parametrize("payment_method", ["pm_card_visa", "pm_card_declined"])
def test_a_webhook_about_another_process_s_call_in_flight_waits_for_its_answer(
    patient: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, payment_method: str
) -> None:
    """Another process of the same `serve` is waiting for the PSP's answer to the call when
    its webhook lands here. This process waits until that one has recorded it, then answers
    the copy without loading the order: no race to the store."""
    stack = patient
    order = place(stack, payment_method)
    key = call_key(uuid.UUID(order["id"]), "authorize", 1)
    other_final, other_in_flight = _in_flight_elsewhere(stack, monkeypatch, tmp_path)
    other_in_flight.add(key, time.monotonic() + 30)
    monkeypatch.setattr(stack.container.app, "apply_webhook", _must_not_load)
    before = versions(stack, order)
    thread, acks = _deliver_in_thread(stack, webhook(order, 1200))
    time.sleep(0.5)
    assert thread.is_alive() and acks == []  # waiting for the other process
    other_final.add(key)  # as that process does: final first, then out of flight
    other_in_flight.discard(key)
    thread.join(5)
    assert acks == [{"status": "duplicate"}]
    assert versions(stack, order) == before


def test_a_copy_of_a_call_known_final_does_not_wait_for_an_entry_left_in_flight(
    patient: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The call is final (this process's `serve` knows it), yet an entry for it is still in
    flight, left by a process killed after recording: the copy is answered at once."""
    stack = patient
    order = place(stack, "pm_card_visa")
    key = call_key(uuid.UUID(order["id"]), "authorize", 1)
    other_final, other_in_flight = _in_flight_elsewhere(stack, monkeypatch, tmp_path)
    other_final.add(key)
    other_in_flight.add(key, time.monotonic() + 30)
    monkeypatch.setattr(stack.container.app, "apply_webhook", _must_not_load)
    started = time.monotonic()
    assert deliver(stack, webhook(order, 1200))["status"] == "duplicate"
    assert time.monotonic() - started < 5  # not the 11 s the entry would hold it


def test_an_entry_left_in_flight_by_a_killed_process_holds_its_webhooks_until_its_deadline(
    patient: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The process that made the call died before its answer was recorded: nobody will
    take the call out of flight. Its webhook waits until the call's own deadline (not a new
    PSP timeout of its own), then takes the slow way: it loads the order and applies what it
    says. Past the deadline, the entry is absent for every process."""
    stack = patient
    order = place(stack, "pm_card_processing")
    order_id = uuid.UUID(order["id"])
    key = call_key(order_id, "authorize", 1)
    _, other_in_flight = _in_flight_elsewhere(stack, monkeypatch, tmp_path)
    other_in_flight.add(key, time.monotonic() + 1.2)  # kept in whole seconds, rounded up
    body = json.loads(webhook(order, 1200))
    body["data"]["object"]["id"] = stack.container.app.get_order(order_id).attempt(1).psp_reference
    started = time.monotonic()
    assert deliver(stack, json.dumps(body).encode())["status"] == "applied"
    assert 1.1 <= time.monotonic() - started < 5  # its deadline, not the 11 s of a new wait
    assert stack.container.app.get_order(order_id).status.value == "succeeded"
    assert key not in other_in_flight  # past its deadline: absent for everyone


def test_a_checkout_s_call_is_in_flight_from_before_the_psp_call_until_recorded(
    patient: Stack, simulator: httpx.Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stack = patient
    _, seen_elsewhere = _in_flight_elsewhere(stack, monkeypatch, tmp_path)
    order_id, thread, placed = _waiting_on_a_slow_psp(stack, simulator)
    assert call_key(order_id, "authorize", 1) in seen_elsewhere
    thread.join()
    assert placed[0].status_code == 201 and placed[0].json()["status"] == "succeeded"
    assert call_key(order_id, "authorize", 1) not in seen_elsewhere


def test_a_checkout_whose_psp_never_answers_takes_its_call_out_of_flight(
    stack: Stack, simulator: httpx.Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The PSP hangs past the checkout's timeout: the checkout answers without an outcome,
    and its call leaves the table all the same (the webhook that may follow waits for
    nothing)."""
    _, seen_elsewhere = _in_flight_elsewhere(stack, monkeypatch, tmp_path)
    simulator.put("/_control/faults", json={"script": ["timeout"], "hang_ms": 2000})
    order = place(stack, "pm_card_visa")
    assert order["status"] not in ("succeeded", "failed")  # no answer from the PSP
    assert call_key(uuid.UUID(order["id"]), "authorize", 1) not in seen_elsewhere
