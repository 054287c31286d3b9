"""The PSP's webhook copies of an outcome the API already recorded cost it little: a call
this process saw reach its final outcome is answered `duplicate` without loading the order
(no result can change it: domain.outcomes.accepts), while a call still in flight is applied."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from adapters.psp.signature import HEADER, sign
from bootstrap.composition import final_call_key
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
    key = final_call_key(uuid.UUID(order["id"]), "authorize", 1)
    assert key in stack.container.final_calls
    before = versions(stack, order)

    def must_not_load(*args: object) -> None:
        raise AssertionError("the order was loaded for a webhook that cannot change it")

    monkeypatch.setattr(stack.container.app, "apply_webhook", must_not_load)
    assert deliver(stack, webhook(order, 1200))["status"] == "duplicate"
    assert versions(stack, order) == before


def test_a_call_still_in_flight_is_not_taken_for_final(stack: Stack) -> None:
    order = place(stack, "pm_card_processing")
    assert order["status"] == "processing"
    assert final_call_key(uuid.UUID(order["id"]), "authorize", 1) not in stack.container.final_calls
    body = json.loads(webhook(order, 1200))
    body["data"]["object"]["id"] = (
        stack.container.app.get_order(uuid.UUID(order["id"])).attempt(1).psp_reference
    )
    assert deliver(stack, json.dumps(body).encode())["status"] == "applied"
    assert stack.container.app.get_order(uuid.UUID(order["id"])).status.value == "succeeded"
