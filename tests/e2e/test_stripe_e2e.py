"""DESIGN.md's failure scenarios 3-6 and 8 through Stripe: `payments serve` (PAYMENTS_PSP=stripe)
-> `payments psp-proxy` (our fault engine) -> localstripe, as real processes on loopback.

Each fault is aimed at the PaymentIntent's create and at its confirm. The proof is
localstripe's own list of PaymentIntents: whatever happened, an order never has two that
took money, and the one it has is the one the order recorded.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from api.auth import DEV_CLIENT
from chaos.localstripe import LocalStripe
from domain.ids import order_id_for
from tests.e2e.stripe_stack import StripeStack, stripe_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    localstripe: LocalStripe,
) -> Iterator[StripeStack]:
    with stripe_stack(request, tmp_path_factory, localstripe) as started:
        yield started


@pytest.mark.parametrize("step", ["create", "confirm"])
@pytest.mark.parametrize("fault", ["timeout", "lost_response", "error_after", "error_before"])
def test_a_fault_on_either_step_ends_in_one_charge(
    stack: StripeStack, fault: str, step: str
) -> None:
    stack.faults(*(["none", fault] if step == "confirm" else [fault]))
    order = stack.checkout()
    order = stack.wait_for(order["id"], "succeeded")
    stack.charged_once(order)


def test_a_429_with_retry_after_is_honoured_and_charges_once(stack: StripeStack) -> None:
    stack.faults("none", "rate_limit", retry_after_s=1)
    order = stack.checkout()
    order = stack.wait_for(order["id"], "succeeded")
    stack.charged_once(order)
    events = [
        e["type"]
        for e in stack.api.get(f"/v1/payment-orders/{order['id']}/events").json()["events"]
    ]
    assert "RetryScheduled" in events


@pytest.mark.parametrize("failpoint", ["before_psp_call", "after_psp_call"])
def test_a_crash_after_the_write_ahead_event_is_finished_by_the_worker(
    stack: StripeStack, failpoint: str
) -> None:
    stack.faults()
    api = stack.processes["api"]
    api.stop()
    api.env["PAYMENTS_FAILPOINTS"] = failpoint
    api.start()
    key = str(uuid.uuid4())
    with pytest.raises(httpx.HTTPError):
        stack.checkout(key)  # the process kills itself at the failpoint
    api.stop()
    api.env.pop("PAYMENTS_FAILPOINTS")
    api.start()
    order_id = str(order_id_for(DEV_CLIENT, key))
    order = stack.wait_for(order_id, "succeeded", timeout_s=40)
    stack.charged_once(order)
