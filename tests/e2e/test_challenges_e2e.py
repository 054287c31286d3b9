"""3-D Secure end to end: real API (with its worker) and simulator processes, and the buyer's
answer posted to the simulator's challenge page.

Every path ends in the right state with the PSP's own books agreeing: completed, failed,
abandoned, completed too late, and completed with the webhook lost (settled by inquiry).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import STORES, Stack, start_stack, stop_stack

pytestmark = pytest.mark.e2e
SESSION_S = 5
CART = {
    "buyer_id": "buyer-3ds",
    "currency": "EUR",
    "items": [
        {"seller_id": "seller-a", "sku": "mug", "quantity": 1, "unit_amount": 1200},
        {"seller_id": "seller-b", "sku": "tea", "quantity": 2, "unit_amount": 300},
    ],
    "payment_method": "pm_card_threeDSecure2Required",
}


@pytest.fixture(scope="module", params=STORES)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A stack whose checkout sessions last SESSION_S seconds."""
    started = start_stack(
        request, tmp_path_factory.mktemp("e2e3ds"), request.param, session_ttl_s=str(SESSION_S)
    )
    yield started
    stop_stack(started)


@pytest.fixture
def sim(stack: Stack) -> httpx.Client:
    stack.settle_background_work()
    stack.simulator.post("/_control/reset").raise_for_status()
    return stack.simulator


def challenged(stack: Stack, **changes: Any) -> dict[str, Any]:
    response = stack.api.post(
        "/v1/checkouts", json=CART | changes, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    assert order["status"] == "requires_action"
    assert order["attempts"][0]["status"] == "requires_action"
    return order


def answer(stack: Stack, order: dict[str, Any], choice: str) -> httpx.Response:
    """The buyer opens the bank's page and presses a button."""
    url = order["next_action"]["url"]
    page = httpx.get(url)
    assert page.status_code == 200 and f'id="{choice}"' in page.text
    return httpx.post(f"{url}/{choice}", follow_redirects=False)


def types(stack: Stack, order_id: str) -> list[str]:
    return [e["type"] for e in stack.events(order_id)]


def psp_payment(stack: Stack, order_id: str) -> dict[str, Any]:
    (payment,) = stack.charges(order_id)
    return payment


def test_a_completed_challenge_returns_the_buyer_and_pays_once(
    stack: Stack, sim: httpx.Client
) -> None:
    stack.faults(duplicate_webhook_rate=1.0, webhook_delay_ms=200)
    order = challenged(stack)
    action = order["next_action"]
    assert action["type"] == "redirect_to_url"
    assert action["url"].startswith(str(stack.simulator.base_url).rstrip("/") + "/challenge/")
    assert action["return_url"].startswith(f"{stack.api.base_url}/status/{order['id']}?token=")
    back = answer(stack, order, "complete")
    assert back.status_code == 303 and back.headers["location"] == action["return_url"]
    assert httpx.get(back.headers["location"]).status_code == 200  # the buyer's status page
    final = stack.wait_for(order["id"], lambda o: o["status"] == "succeeded")
    assert "next_action" not in final and final["captured_amount"] == order["amount"]
    time.sleep(0.5)  # the duplicate webhook arrives and changes nothing
    assert types(stack, order["id"]).count("Captured") == 1
    assert psp_payment(stack, order["id"])["status"] == "captured"


def test_a_client_return_url_is_where_the_bank_sends_the_buyer(
    stack: Stack, sim: httpx.Client
) -> None:
    order = challenged(stack, return_url="https://shop.example/thanks?order=1")
    assert order["next_action"]["return_url"] == "https://shop.example/thanks?order=1"
    back = answer(stack, order, "complete")
    assert back.headers["location"] == "https://shop.example/thanks?order=1"
    stack.wait_for(order["id"], lambda o: o["status"] == "succeeded")


def test_a_failed_challenge_lets_the_buyer_pay_with_another_card(
    stack: Stack, sim: httpx.Client
) -> None:
    order = challenged(stack)
    assert answer(stack, order, "fail").status_code == 303
    failed = stack.wait_for(order["id"], lambda o: o["status"] == "requires_payment_method")
    assert failed["attempts"][0]["failure_code"] == "authentication_failed"
    retry = stack.api.post(
        f"/v1/payment-orders/{order['id']}/attempts", json={"payment_method": "pm_card_visa"}
    )
    assert retry.status_code == 201 and retry.json()["status"] == "succeeded"
    statuses = sorted(p["status"] for p in stack.charges(order["id"]))
    assert statuses == ["captured", "declined"]


def test_an_abandoned_challenge_expires_the_order_and_cancels_the_psp_payment(
    stack: Stack, sim: httpx.Client
) -> None:
    order = challenged(stack)
    final = stack.wait_for(
        order["id"],
        lambda o: o["status"] == "expired" and o["attempts"][0]["status"] == "voided",
        timeout_s=SESSION_S + 15,
    )
    assert final["attempts"][0]["failure_code"] == "challenge_abandoned"
    history = types(stack, order["id"])
    assert history.index("ChallengeAbandoned") < history.index("Expired")
    assert history.index("Expired") < history.index("VoidRequested") < history.index("Voided")
    assert psp_payment(stack, order["id"])["status"] == "voided"
    late = httpx.post(f"{order['next_action']['url']}/complete", follow_redirects=False)
    assert late.status_code == 409  # the bank's page no longer takes an answer
    assert psp_payment(stack, order["id"])["captured_amount"] == 0


def test_a_challenge_completed_too_late_is_refunded_never_kept(
    stack: Stack, sim: httpx.Client
) -> None:
    order = challenged(stack)
    # Hold every call but inquiries at the PSP, so the order's cancel cannot overtake the
    # buyer, who completes the challenge after the session ended.
    stack.faults(error_before_rate=1.0, faults_on_inquiries=False)
    stack.wait_for(order["id"], lambda o: o["status"] == "expired", timeout_s=SESSION_S + 15)
    assert answer(stack, order, "complete").status_code == 303
    stack.faults()
    final = stack.wait_for(order["id"], lambda o: o["refunded_amount"] == o["amount"], timeout_s=20)
    assert final["status"] == "expired" and final["captured_amount"] == order["amount"]
    payment = psp_payment(stack, order["id"])
    assert payment["status"] == "refunded" and payment["refunded_amount"] == order["amount"]


def test_a_lost_webhook_is_settled_by_the_workers_inquiry(stack: Stack, sim: httpx.Client) -> None:
    stack.faults(lost_webhook_rate=1.0)
    order = challenged(stack, capture_method="manual")
    assert answer(stack, order, "complete").status_code == 303
    final = stack.wait_for(order["id"], lambda o: o["status"] == "authorized")
    history = types(stack, order["id"])
    assert "WebhookApplied" not in history
    assert history[history.index("Authorized") - 1] == "OutcomeInquired"
    assert psp_payment(stack, order["id"])["status"] == "authorized"
    assert final["attempts"][0]["status"] == "authorized"
    assert sim.get("/_control/faults").json()["injected"].get("lost_webhook", 0) >= 1


def test_a_hold_that_lapses_is_recorded_released_and_refused_for_capture(
    stack: Stack, sim: httpx.Client
) -> None:
    stack.faults(hold_lifetime_s=1.5)
    body = CART | {"payment_method": "pm_card_visa", "capture_method": "manual"}
    placed = stack.api.post(
        "/v1/checkouts", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    order = placed.json()
    assert order["status"] == "authorized" and order["attempts"][0]["authorization_expires_at"]
    final = stack.wait_for(
        order["id"], lambda o: o["status"] == "expired" and o["attempts"][0]["status"] == "voided"
    )
    assert final["attempts"][0]["failure_code"] == "authorization_expired"
    history = types(stack, order["id"])
    assert history.index("HoldLapsed") < history.index("VoidRequested") < history.index("Voided")
    refused = stack.api.post(f"/v1/payment-orders/{order['id']}/capture", json={})
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("authorization_expired"), refused.json()
    assert psp_payment(stack, order["id"])["status"] == "voided"
