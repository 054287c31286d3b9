from __future__ import annotations

import pytest

from psp.faults import FaultPlan, FaultSettings
from psp.sim_state import SimError, SimulatedPSP


def payment(
    method: str = "pm_card_visa", capture: bool = True, amount: int = 1000
) -> dict[str, object]:
    return {
        "amount": amount,
        "currency": "EUR",
        "payment_method": method,
        "capture": capture,
        "reference": "order-1",
    }


def test_the_same_key_never_charges_twice() -> None:
    books = SimulatedPSP()
    first = books.authorize("k1", payment())
    again = books.authorize("k1", payment())
    assert again.body == first.body and again.notices == []
    assert len(books.payments) == 1


def test_a_key_reused_with_other_parameters_is_refused() -> None:
    books = SimulatedPSP()
    books.authorize("k1", payment())
    with pytest.raises(SimError) as error:
        books.authorize("k1", payment(amount=999))
    assert error.value.status == 409


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        ("pm_card_visa", "captured", None),
        ("pm_card_mastercard", "captured", None),
        ("pm_card_declined", "declined", "card_declined"),
        ("pm_card_insufficient_funds", "declined", "insufficient_funds"),
        ("pm_unknown", "declined", "invalid_payment_method"),
        ("pm_card_processing", "processing", None),
    ],
)
def test_test_tokens(token: str, status: str, code: str | None) -> None:
    body = SimulatedPSP().authorize("k1", payment(token)).body
    assert (body["status"], body["decline_code"]) == (status, code)


def test_processing_resolves_later_and_the_inquiry_sees_it() -> None:
    books = SimulatedPSP()
    outcome = books.authorize("k1", payment("pm_card_processing", capture=False))
    assert outcome.processing is not None and books.inquire("k1")["status"] == "processing"  # type: ignore[index]
    notices = books.resolve_processing(outcome.processing)
    assert [n.type for n in notices] == ["payment.authorized"]
    assert books.inquire("k1")["status"] == "authorized"  # type: ignore[index]
    assert books.resolve_processing(outcome.processing) == []


def test_follow_ups_respect_the_money_held() -> None:
    books = SimulatedPSP()
    pay = books.authorize("k1", payment(capture=False)).body["id"]
    with pytest.raises(SimError):
        books.refund("r0", pay, {"amount": 1})
    assert books.capture("c1", pay, {"amount": 600}).body["amount"] == 600
    with pytest.raises(SimError) as error:
        books.capture("c2", pay, {})
    assert error.value.code == "invalid_state"
    books.refund("r1", pay, {"amount": 500})
    with pytest.raises(SimError):
        books.refund("r2", pay, {"amount": 101})
    assert books.refund("r3", pay, {"amount": 100}).body["status"] == "refunded"
    assert books.payments[pay].status == "refunded"
    assert books.inquire("r3")["amount"] == 100  # type: ignore[index]


def test_inquiry_of_an_unknown_key_is_none() -> None:
    assert SimulatedPSP().inquire("never-sent") is None


def test_fault_plans_are_reproducible_from_the_seed() -> None:
    settings = FaultSettings(seed=7, timeout_rate=0.2, error_before_rate=0.2, rate_limit_rate=0.1)
    plans = [FaultPlan(settings), FaultPlan(settings)]
    draws = [[plan.next_fault() for _ in range(50)] for plan in plans]
    assert draws[0] == draws[1]
    assert {"timeout", "error_before", "rate_limit", "none"} <= set(draws[0])


def test_a_script_comes_before_the_rates_and_inquiries_get_no_lost_responses() -> None:
    plan = FaultPlan(FaultSettings(script=["lost_response", "timeout"], error_after_rate=1.0))
    assert plan.next_fault(inquiry=True) == "error_before"
    assert plan.next_fault() == "timeout"
    assert plan.next_fault() == "error_after"
    assert plan.injected["error_before"] == 1


def test_rates_that_sum_past_one_are_refused() -> None:
    with pytest.raises(ValueError, match="sum to more than 1"):
        FaultSettings(timeout_rate=0.6, error_after_rate=0.6)


def test_the_bank_answers_a_processing_payment_after_a_fixed_delay_when_asked() -> None:
    fixed = FaultPlan(FaultSettings(processing_delay_ms=1500, webhook_delay_ms=10))
    assert [fixed.processing_delay_s() for _ in range(3)] == [1.5, 1.5, 1.5]
    drawn = FaultPlan(FaultSettings(seed=3, webhook_delay_ms=200))
    delays = [drawn.processing_delay_s() for _ in range(50)]
    assert all(0 <= d <= 0.2 for d in delays) and len(set(delays)) > 1
