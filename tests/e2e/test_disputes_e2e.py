"""Disputes end to end: the simulator's bank opens and decides a dispute, its signed webhooks
(duplicated, out of order) reach the API, and the order and ledger show it exactly once."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e
CART = {
    "buyer_id": "buyer-dispute",
    "currency": "EUR",
    "items": [
        {"seller_id": "seller-a", "sku": "mug", "quantity": 1, "unit_amount": 2000},
        {"seller_id": "seller-b", "sku": "tea", "quantity": 1, "unit_amount": 1000},
    ],
    "payment_method": "pm_card_visa",
}


def paid(stack: Stack) -> dict[str, Any]:
    response = stack.api.post(
        "/v1/checkouts", json=CART, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert response.status_code == 201 and response.json()["status"] == "succeeded"
    order: dict[str, Any] = response.json()
    return order


def balances(stack: Stack) -> dict[str, int]:
    """The EUR balances, once the ledger has projected every event stored so far."""
    head = stack.latest_position()
    deadline = time.monotonic() + 15
    sql = "SELECT position FROM projection_positions WHERE name = 'ledger'"
    while stack.store.one(sql)[0][0] < head and time.monotonic() < deadline:
        time.sleep(0.1)
    rows = stack.api.get("/v1/ledger/balances").json()["accounts"]
    return {row["account"]: row["balance"] for row in rows if row["currency"] == "EUR"}


def dispute(sim: httpx.Client, order: dict[str, Any], amount: int) -> str:
    payment = order["attempts"][0]["psp_reference"]
    opened = sim.post(f"/_control/payments/{payment}/dispute", json={"amount": amount})
    assert opened.status_code == 200, opened.text
    dispute_id: str = opened.json()["id"]
    return dispute_id


def disputes(stack: Stack, order_id: str, status: str) -> list[dict[str, Any]]:
    order = stack.wait_for(
        order_id, lambda o: [d["status"] for d in o.get("disputes", [])] == [status]
    )
    assert order["status"] == "succeeded"  # a dispute never moves the order
    found: list[dict[str, Any]] = order["disputes"]
    return found


def types(stack: Stack, order_id: str) -> list[str]:
    return [e["type"] for e in stack.events(order_id)]


def test_a_lost_dispute_is_taken_from_the_sellers_pro_rata(stack: Stack, sim: httpx.Client) -> None:
    order = paid(stack)
    before = balances(stack)
    dispute_id = dispute(sim, order, 1500)
    [opened] = disputes(stack, order["id"], "needs_response")
    assert (opened["id"], opened["amount"], opened["reason"]) == (dispute_id, 1500, "fraudulent")
    assert opened["evidence_due_by"]
    sim.post(f"/_control/disputes/{dispute_id}/resolve", json={"outcome": "lost"})
    disputes(stack, order["id"], "lost")
    after = balances(stack)
    moved = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    assert {k: v for k, v in moved.items() if v} == {
        "psp_receivable": -3000,  # the 1500 taken back, and the PSP's 1500 fee
        "psp_fees": 1500,
        "seller_payable:seller-a": 900,  # two thirds of the 1500, less the platform's fee
        "seller_payable:seller-b": 450,
        "dispute_losses": 150,  # the platform's fee on the 1500
    }


def test_a_won_dispute_with_duplicated_late_webhooks_is_recorded_once(
    stack: Stack, sim: httpx.Client
) -> None:
    stack.faults(duplicate_webhook_rate=1.0, webhook_delay_ms=400)
    order = paid(stack)
    dispute_id = dispute(sim, order, order["amount"])
    sim.post(f"/_control/disputes/{dispute_id}/resolve", json={"outcome": "won"})
    disputes(stack, order["id"], "won")
    time.sleep(1.0)  # every copy has arrived
    history = types(stack, order["id"])
    assert history.count("DisputeOpened") == 1 and history.count("DisputeClosed") == 1


def test_a_dispute_of_a_payment_we_do_not_hold_is_refused_by_the_psp(
    stack: Stack, sim: httpx.Client
) -> None:
    order = paid(stack)
    payment = order["attempts"][0]["psp_reference"]
    too_much = sim.post(f"/_control/payments/{payment}/dispute", json={"amount": 10**6})
    assert too_much.status_code == 400
    assert "disputes" not in stack.order(order["id"])
