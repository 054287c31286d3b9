"""DESIGN.md's failure scenarios end to end: real API (with its worker) and simulator processes.

Each test asserts the order's final state, its audit trail, and what the simulator really
did: never more than one charge per order.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

CART = {
    "buyer_id": "buyer-7",
    "currency": "EUR",
    "items": [
        {"seller_id": "seller-a", "sku": "mug", "quantity": 1, "unit_amount": 1200},
        {"seller_id": "seller-b", "sku": "tea", "quantity": 3, "unit_amount": 250},
    ],
    "payment_method": "pm_card_visa",
}


def checkout(stack: Stack, **changes: Any) -> dict[str, Any]:
    response = stack.api.post(
        "/v1/checkouts", json=CART | changes, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def types(stack: Stack, order_id: str) -> list[str]:
    return [e["type"] for e in stack.events(order_id)]


def settled(order: dict[str, Any]) -> bool:
    return order["status"] not in ("processing",)


@pytest.mark.parametrize("fault", ["timeout", "lost_response", "error_after"])
def test_an_unknown_outcome_is_inquired_then_recorded_and_charged_once(
    stack: Stack, sim: httpx.Client, fault: str
) -> None:
    stack.faults(script=[fault], hang_ms=2000, webhook_events="async")
    order = checkout(stack)
    assert order["status"] == "processing"
    assert order["attempts"][0]["status"] == "unknown"
    final = stack.wait_for(order["id"], settled)
    assert final["status"] == "succeeded"
    history = types(stack, order["id"])
    assert history.index("OutcomeInquired") < history.index("Captured")
    assert "PSPRequestResent" not in history  # never resent before the inquiry answered
    [payment] = stack.held(order["id"])
    assert payment["status"] == "captured"


def test_a_5xx_before_processing_is_resent_with_the_same_key(
    stack: Stack, sim: httpx.Client
) -> None:
    stack.faults(script=["error_before"])
    order = checkout(stack)
    assert order["attempts"][0]["status"] == "pending"
    final = stack.wait_for(order["id"], settled)
    assert final["status"] == "succeeded"
    events = stack.events(order["id"])
    errored = next(e for e in events if e["type"] == "PSPErrored")
    assert errored["data"]["processed"] is False
    assert "PSPRequestResent" in [e["type"] for e in events]
    requested = next(e for e in events if e["type"] == "AuthorizationRequested")
    [payment] = stack.held(order["id"])
    assert payment["idempotency_key"] == requested["data"]["psp_idempotency_key"]


def test_connection_refused_is_retried_within_the_budget_then_fails_without_money(
    stack: Stack, sim: httpx.Client
) -> None:
    stack.processes["psp-sim"].stop()
    try:
        order = checkout(stack)
        assert order["attempts"][0]["failure_code"] == "psp_unavailable"
        final = stack.wait_for(order["id"], settled)
    finally:
        stack.restart("psp-sim")
    assert final["status"] == "failed"
    assert types(stack, order["id"]).count("PSPRequestResent") == 3  # PAYMENTS_MAX_ATTEMPTS
    assert stack.charges(order["id"]) == []


def test_a_429_retry_after_is_honoured(stack: Stack, sim: httpx.Client) -> None:
    stack.faults(script=["rate_limit"], retry_after_s=1)
    order = checkout(stack)
    final = stack.wait_for(order["id"], settled)
    assert final["status"] == "succeeded"
    events = stack.events(order["id"])
    errored = next(e for e in events if e["type"] == "PSPErrored")
    scheduled = next(e for e in events if e["type"] == "RetryScheduled")
    waited = datetime.fromisoformat(scheduled["data"]["due_at"]) - datetime.fromisoformat(
        errored["occurred_at"]
    )
    assert waited.total_seconds() >= 0.99
    assert errored["data"]["retry_after_s"] == 1
    assert len(stack.held(order["id"])) == 1


def test_a_psp_that_never_takes_the_request_fails_the_order_without_money(
    stack: Stack, sim: httpx.Client
) -> None:
    stack.faults(script=["error_before"] * 10)
    order = checkout(stack)
    final = stack.wait_for(order["id"], settled)
    assert final["status"] == "failed"
    assert final["attempts"][0]["failure_code"] == "retries_exhausted"
    assert stack.charges(order["id"]) == []


def test_a_hard_decline_is_not_retried(stack: Stack, sim: httpx.Client) -> None:
    order = checkout(stack, payment_method="pm_card_insufficient_funds")
    assert order["status"] == "requires_payment_method"
    time.sleep(0.5)  # the worker has had ample time to (wrongly) retry
    assert "PSPRequestResent" not in types(stack, order["id"])
    assert len(stack.charges(order["id"])) == 1 and stack.held(order["id"]) == []


def test_an_outcome_still_unknown_goes_to_review_and_an_operator_resolves_it(
    stack: Stack, sim: httpx.Client
) -> None:
    # Every request times out (a script could be used up by other orders' inquiries).
    stack.faults(timeout_rate=1.0, hang_ms=1500, webhook_events="none")
    order = checkout(stack)
    review = stack.wait_for(order["id"], lambda o: o["status"] == "needs_review")
    assert review["attempts"][0]["status"] == "unknown"
    stack.wait_projected()  # the dashboard is a read model
    board = stack.api.get("/v1/dashboard/failures").json()
    queued = [r for r in board["manual_review"] if r["order_id"] == order["id"]]
    assert queued and queued[0]["reason"].startswith("outcome_unknown")
    resolved = stack.api.post(
        f"/v1/payment-orders/{order['id']}/resolve",
        json={"outcome": "captured", "note": "PSP dashboard shows the charge", "operator": "ana"},
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "succeeded"
    event = next(e for e in stack.events(order["id"]) if e["type"] == "ManuallyResolved")
    assert event["data"]["note"] == "PSP dashboard shows the charge"
    assert event["data"]["operator"].startswith("ana (")
    assert len(stack.held(order["id"])) == 1


def test_an_amount_mismatch_goes_to_review_never_accepted(stack: Stack, sim: httpx.Client) -> None:
    stack.faults(amount_mismatch_rate=1.0)
    order = checkout(stack)
    assert order["status"] == "needs_review"
    assert order["captured_amount"] == 0
    final = stack.wait_for(order["id"], lambda o: o["status"] == "needs_review")
    assert final["attempts"][0]["failure_code"] == "amount_mismatch"


def test_a_processing_payment_is_settled_by_its_webhook_once(
    stack: Stack, sim: httpx.Client
) -> None:
    stack.faults(webhook_delay_ms=300, duplicate_webhook_rate=1.0)
    order = checkout(stack, payment_method="pm_card_processing")
    assert order["status"] == "processing"
    # Either the webhook settles it first, or the inquiry budget runs out (manual review) and
    # the webhook, arriving later, still settles it: both end `succeeded`.
    final = stack.wait_for(order["id"], lambda o: o["status"] == "succeeded")
    assert final["status"] == "succeeded"
    time.sleep(0.5)  # let the duplicate arrive
    history = types(stack, order["id"])
    assert history.count("Captured") == 1
    assert len(stack.held(order["id"])) == 1


def test_a_late_answer_after_the_inquiry_budget_still_settles_the_order(
    stack: Stack, sim: httpx.Client
) -> None:
    # Three inquiries take at most 0.35 s here; the bank answers after 1.5 s, its webhook up
    # to 0.5 s later. Whichever comes first (the webhook, or the one last inquiry the worker
    # makes PAYMENTS_RECONCILE_AFTER_S after giving up) settles the order.
    stack.faults(processing_delay_ms=1500, webhook_delay_ms=500)
    order = checkout(stack, payment_method="pm_card_processing")
    stack.wait_for(order["id"], lambda o: o["status"] == "needs_review")
    final = stack.wait_for(order["id"], lambda o: o["status"] == "succeeded")
    assert final["captured_amount"] == order["amount"]
    history = types(stack, order["id"])
    assert history.index("SentToManualReview") < history.index("Captured")
    assert history.count("Captured") == 1
    assert len(stack.held(order["id"])) == 1


def webhook_for(order: dict[str, Any], status: str, event_id: str | None = None) -> dict[str, Any]:
    attempt_key = f"{order['id']}:authorize:1"
    payment = {
        "id": order["attempts"][0]["psp_reference"] or "pay_x",
        "status": status,
        "amount": order["amount"],
        "currency": order["currency"],
        "idempotency_key": attempt_key,
    }
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": f"payment.{status}",
        "data": {"object": payment},
    }


def test_out_of_order_and_duplicate_webhooks_never_move_an_order_backwards(
    stack: Stack, sim: httpx.Client
) -> None:
    order = checkout(stack)
    assert order["status"] == "succeeded"
    before = stack.events_recorded()
    for status in ("authorized", "declined", "captured"):
        response = stack.webhook(webhook_for(order, status))
        assert response.status_code == 200
        assert response.json()["status"] == "duplicate"
    assert stack.events_recorded() == before
    assert stack.order(order["id"])["status"] == "succeeded"


@pytest.mark.parametrize(
    ("case", "status"),
    [("forged", 401), ("stale", 401), ("unsigned", 401), ("malformed", 400)],
)
def test_forged_replayed_or_malformed_webhooks_are_rejected_and_change_nothing(
    stack: Stack, sim: httpx.Client, case: str, status: int
) -> None:
    order = checkout(stack, payment_method="pm_card_declined")
    event = webhook_for(order, "captured")
    before = stack.events_recorded()
    if case == "forged":
        response = stack.webhook(event, secret="not-the-secret")
    elif case == "stale":
        response = stack.webhook(event, timestamp=int(time.time()) - 301)
    elif case == "unsigned":
        response = stack.api.post("/v1/webhooks/psp", json=event)
    else:
        response = stack.webhook({"id": "evt_1", "type": "payment.captured", "data": {}})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert stack.events_recorded() == before
    assert stack.order(order["id"])["status"] == "requires_payment_method"
