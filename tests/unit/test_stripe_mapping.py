"""The Stripe connector's pure parts: amounts per currency and the one status mapping."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.psp.stripe import from_stripe, map_payment_intent, stripe_factor, to_stripe
from domain.psp import PSPServerError, PSPStatus


@pytest.mark.parametrize(
    ("currency", "ours", "stripes"),
    [
        ("EUR", 1050, 1050),
        ("JPY", 1050, 1050),
        ("KRW", 990, 990),
        ("KWD", 1250, 1250),
        ("ISK", 12, 1200),
    ],
)
def test_amounts_are_converted_where_stripe_counts_differently(
    currency: str, ours: int, stripes: int
) -> None:
    assert to_stripe(ours, currency) == stripes
    assert from_stripe(stripes, currency) == ours


def test_an_amount_that_does_not_convert_back_is_malformed() -> None:
    assert stripe_factor("ISK") == 100
    for bad in (1201, -100, 10**30, "1200", 12.0, True):
        with pytest.raises(PSPServerError):
            from_stripe(bad, "ISK" if bad == 1201 else "EUR")


def intent(status: str, **extra: Any) -> dict[str, Any]:
    return {"id": "pi_1", "status": status, "amount": 2550, "currency": "eur", **extra}


@pytest.mark.parametrize(
    ("status", "mapped"),
    [
        ("requires_capture", PSPStatus.AUTHORIZED),
        ("succeeded", PSPStatus.CAPTURED),
        ("processing", PSPStatus.PROCESSING),
        ("canceled", PSPStatus.VOIDED),
    ],
)
def test_each_stripe_status_has_one_meaning(status: str, mapped: PSPStatus) -> None:
    result = map_payment_intent(intent(status, amount_received=2550))
    assert result is not None and (result.status, result.amount, result.currency) == (
        mapped,
        2550,
        "EUR",
    )


def test_a_decline_carries_stripes_decline_code_and_unconfirmed_is_nothing_yet() -> None:
    error = {"code": "card_declined", "decline_code": "insufficient_funds", "message": "No."}
    declined = map_payment_intent(intent("requires_payment_method", last_payment_error=error))
    assert declined is not None
    assert (declined.status, declined.decline_code) == (PSPStatus.DECLINED, "insufficient_funds")
    assert map_payment_intent(intent("requires_confirmation")) is None
    assert map_payment_intent(intent("requires_payment_method")) is None


def test_localstripes_partial_capture_reads_as_the_amount_captured() -> None:
    charge = {"amount": 2550, "amount_refunded": 1550}
    result = map_payment_intent(intent("succeeded", latest_charge=charge))
    assert result is not None and result.amount == 1000


def test_text_we_could_not_store_is_a_malformed_answer() -> None:
    with pytest.raises(PSPServerError):
        map_payment_intent(intent("succeeded", id="pi_\x00", amount_received=2550))


def test_a_redirect_to_the_bank_is_a_challenge_with_its_page() -> None:
    action = {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.example/3ds"}}
    result = map_payment_intent(intent("requires_action", next_action=action))
    assert result is not None and result.status == PSPStatus.REQUIRES_ACTION
    assert result.action_url == "https://hooks.example/3ds"


def test_an_action_with_no_page_to_send_the_buyer_to_is_a_decline() -> None:
    action = {"type": "use_stripe_sdk", "use_stripe_sdk": {}}
    result = map_payment_intent(intent("requires_action", next_action=action))
    assert result is not None and result.status == PSPStatus.DECLINED
    assert result.decline_code == "authentication_required"


@pytest.mark.parametrize("url", ["javascript:alert(1)", "", "ftp://x/y", 7, None])
def test_a_redirect_we_could_not_send_a_buyer_to_is_malformed(url: object) -> None:
    action = {"type": "redirect_to_url", "redirect_to_url": {"url": url}}
    with pytest.raises(PSPServerError):
        map_payment_intent(intent("requires_action", next_action=action))
