"""3-D Secure through Stripe (localstripe behind our fault proxy): the PaymentIntent asks for
a redirect, the buyer answers on the bank's page, and localstripe's own PaymentIntents agree
with every order: completed, failed, abandoned (canceled at Stripe), completed too late."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chaos.localstripe import LocalStripe
from tests.e2e.stripe_stack import StripeStack, stripe_stack

pytestmark = pytest.mark.e2e
SESSION_S = 6
CHALLENGED = "pm_card_threeDSecure2Required"


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    localstripe: LocalStripe,
) -> Iterator[StripeStack]:
    with stripe_stack(
        request, tmp_path_factory, localstripe, session_ttl_s=str(SESSION_S)
    ) as started:
        started.faults()
        yield started


def challenged(stack: StripeStack, **changes: Any) -> dict[str, Any]:
    order = stack.checkout(payment_method=CHALLENGED, **changes)
    assert order["status"] == "requires_action", order
    assert order["next_action"]["type"] == "redirect_to_url"
    return order


def answer(order: dict[str, Any], choice: str) -> httpx.Response:
    """The buyer presses a button on the bank's page."""
    url = order["next_action"]["url"]
    assert httpx.get(url).status_code == 200
    return httpx.post(f"{url}/{choice}", follow_redirects=False)


def intent(stack: StripeStack, order: dict[str, Any]) -> dict[str, Any]:
    (found,) = stack.intents(order["id"])
    assert found["id"] == order["attempts"][0]["psp_reference"]
    return found


def test_a_completed_challenge_is_captured_once_and_the_buyer_sent_back(
    stack: StripeStack,
) -> None:
    order = challenged(stack)
    back = answer(order, "complete")
    assert back.status_code == 303
    assert back.headers["location"] == order["next_action"]["return_url"]
    assert back.headers["location"].startswith(f"{stack.api.base_url}/status/{order['id']}")
    final = stack.wait_for(order["id"], "succeeded")
    assert final["captured_amount"] == order["amount"]
    stack.charged_once(final)
    assert intent(stack, order)["status"] == "succeeded"


def test_a_completed_manual_capture_challenge_is_authorized(stack: StripeStack) -> None:
    order = challenged(stack, capture_method="manual")
    answer(order, "complete")
    stack.wait_for(order["id"], "authorized")
    assert intent(stack, order)["status"] == "requires_capture"


def test_a_failed_challenge_is_declined_and_another_card_pays(stack: StripeStack) -> None:
    order = challenged(stack)
    answer(order, "fail")
    failed = stack.wait_for(order["id"], "requires_payment_method")
    assert failed["attempts"][0]["failure_code"] == "payment_intent_authentication_failure"
    retry = stack.api.post(
        f"/v1/payment-orders/{order['id']}/attempts", json={"payment_method": "pm_card_visa"}
    )
    assert retry.status_code == 201 and retry.json()["status"] == "succeeded"
    stack.charged_once(retry.json())


def test_an_abandoned_challenge_cancels_the_payment_intent(stack: StripeStack) -> None:
    order = challenged(stack)
    final = stack.wait_for(order["id"], "expired", timeout_s=SESSION_S + 20)
    assert final["attempts"][0]["failure_code"] == "challenge_abandoned"
    stack.wait_for_attempt(order["id"], "voided")
    assert intent(stack, order)["status"] == "canceled"
    url = order["next_action"]["url"]  # the bank's page is gone, and takes no answer
    assert httpx.get(url).status_code == 404
    assert httpx.post(f"{url}/complete").status_code == 409


def test_a_challenge_completed_too_late_is_refunded(stack: StripeStack) -> None:
    order = challenged(stack)
    # Every call but inquiries fails before it reaches localstripe, so the cancel cannot
    # overtake the buyer, who completes after the session ended.
    stack.faults(error_before_rate=1.0, faults_on_inquiries=False)
    stack.wait_for(order["id"], "expired", timeout_s=SESSION_S + 20)
    assert answer(order, "complete").status_code == 303
    stack.faults()
    final = stack.wait_for_amount(order["id"], "refunded_amount", order["amount"])
    assert final["status"] == "expired" and final["captured_amount"] == order["amount"]
    assert intent(stack, order)["status"] == "succeeded"  # and refunded in full:
    refunds = stack.stripe.v1.refunds.list(params={"payment_intent": intent(stack, order)["id"]})
    assert sum(r.amount for r in refunds.data) == order["amount"]
