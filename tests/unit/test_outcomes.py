"""The pure decisions about PSP answers, without the aggregate."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.calls import Attempt, CallKind
from domain.outcomes import MOVES, Verdict, accepts, refund_moves, settle, verdict
from domain.psp import PSPResult, PSPStatus
from domain.statuses import AttemptStatus, OrderStatus

S = OrderStatus
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def attempt(status: AttemptStatus = AttemptStatus.PENDING) -> Attempt:
    return Attempt(CallKind.AUTHORIZE, 1, "key", 2550, NOW, status=status)


def test_a_result_is_read_as_processing_refusal_mismatch_or_success() -> None:
    call = attempt()
    assert verdict(call, PSPResult("p", PSPStatus.PROCESSING, 2550, "EUR"), "EUR") == (
        Verdict.PROCESSING
    )
    assert verdict(call, PSPResult("p", PSPStatus.DECLINED, 2550, "EUR"), "EUR") == Verdict.REFUSAL
    assert verdict(call, PSPResult("p", PSPStatus.CAPTURED, 2549, "EUR"), "EUR") == Verdict.MISMATCH
    assert verdict(call, PSPResult("p", PSPStatus.CAPTURED, 2550, "USD"), "EUR") == Verdict.MISMATCH
    assert verdict(call, PSPResult("p", PSPStatus.AUTHORIZED, 2550, "EUR"), "EUR") == (
        Verdict.SUCCESS
    )


def test_a_late_success_is_accepted_only_when_the_money_allows_it() -> None:
    given_up = attempt(AttemptStatus.FAILED)
    success = PSPResult("p", PSPStatus.CAPTURED, 2550, "EUR")
    assert accepts(given_up, success, late_success_fits=True)
    assert not accepts(given_up, success, late_success_fits=False)
    assert not accepts(given_up, PSPResult("p", PSPStatus.DECLINED, 2550, "EUR"), True)
    processing = PSPResult("p", PSPStatus.PROCESSING, 2550, "EUR")
    assert accepts(attempt(), processing, False)
    marked = attempt()
    marked.psp_processing = True
    assert not accepts(marked, processing, False)


def test_an_outcome_moves_the_status_or_the_status_a_review_returns_to() -> None:
    call = attempt()
    assert settle(S.PROCESSING, None, call, MOVES["captured"]) == (S.SUCCEEDED, None)
    assert settle(S.FAILED, None, call, MOVES["captured"]) == (S.FAILED, None)
    own_review = {"kind": "authorize", "number": 1, "since": "processing"}
    assert settle(S.NEEDS_REVIEW, own_review, call, MOVES["declined"]) == (
        S.REQUIRES_PAYMENT_METHOD,
        None,
    )
    other = {"kind": "capture", "number": 1, "since": "authorized"}
    status, review = settle(S.NEEDS_REVIEW, other, call, MOVES["captured"])
    assert status == S.NEEDS_REVIEW and review == {**other, "since": S.SUCCEEDED}


def test_a_refund_leaves_the_order_refunded_or_partially_refunded() -> None:
    assert refund_moves(True)[S.SUCCEEDED] == S.REFUNDED
    assert refund_moves(False)[S.PARTIALLY_REFUNDED] == S.PARTIALLY_REFUNDED
