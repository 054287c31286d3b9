"""3-D Secure challenges in the domain: every way a challenge ends, and what the worker owes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.calls import Action, CallKind, Purpose
from domain.cart import Checkout
from domain.errors import IllegalTransition
from domain.order import PaymentOrder
from domain.psp import PSPResult, PSPStatus
from domain.recovery import Recovery, RetryPolicy
from domain.statuses import AttemptStatus, OrderStatus
from domain.worklist import Task, Timing, due, work_for
from tests.unit.orders import ITEMS, NOW, TTL, answer, placed, replayed

AUTH = CallKind.AUTHORIZE
URL = "https://psp.example/challenge/pay_1"
TIMING = Timing(stale_after=timedelta(seconds=5), reconcile_after=timedelta(hours=1))
RECOVERY = Recovery(RetryPolicy(base_s=1.0, max_s=8.0, max_attempts=2), lambda: 0.5)
END = NOW + TTL


def challenged(capture_method: str = "automatic") -> PaymentOrder:
    order = placed(capture_method, payment_method="pm_card_threeDSecure2Required")
    result = answer(PSPStatus.REQUIRES_ACTION, action_url=URL)
    RECOVERY.after_result(order, order.attempts[0], result, NOW)
    return order


def test_a_challenge_holds_the_order_with_a_next_action_that_replays_the_same() -> None:
    order = challenged()
    assert order.status == OrderStatus.REQUIRES_ACTION
    assert order.attempts[0].status == AttemptStatus.REQUIRES_ACTION
    assert order.next_action == {"type": "redirect_to_url", "url": URL, "return_url": None}
    rebuilt = replayed(order)
    assert rebuilt.status == order.status and rebuilt.next_action == order.next_action


def test_the_return_url_is_kept_with_the_attempt() -> None:
    back = "https://shop.example/back"
    checkout = Checkout("b", "EUR", ITEMS, "pm_card_threeDSecure2Required", "automatic")
    order = PaymentOrder.place(
        checkout, client_id="c", idempotency_key="k", fee_bps=0, now=NOW, session_ttl=TTL
    )
    order.request_authorization(checkout.payment_method, NOW, None, back)
    order.record_result(AUTH, 1, answer(PSPStatus.REQUIRES_ACTION, action_url=URL))
    assert order.next_action is not None and order.next_action["return_url"] == back
    assert replayed(order).attempts[0].return_url == back


@pytest.mark.parametrize(
    ("capture_method", "status", "order_status"),
    [
        ("automatic", PSPStatus.CAPTURED, OrderStatus.SUCCEEDED),
        ("manual", PSPStatus.AUTHORIZED, OrderStatus.AUTHORIZED),
    ],
)
def test_a_completed_challenge_pays_the_order(
    capture_method: str, status: PSPStatus, order_status: OrderStatus
) -> None:
    order = challenged(capture_method)
    assert order.apply_webhook("evt_1", f"payment.{status}", AUTH, 1, answer(status))
    assert order.status == order_status and order.next_action is None
    assert not order.in_flight()
    assert not order.apply_webhook("evt_1", f"payment.{status}", AUTH, 1, answer(status))


def test_a_failed_challenge_lets_the_buyer_try_another_card() -> None:
    order = challenged()
    failed = answer(PSPStatus.DECLINED, decline_code="authentication_failed")
    order.apply_webhook("evt_1", "payment.declined", AUTH, 1, failed)
    assert order.status == OrderStatus.REQUIRES_PAYMENT_METHOD
    assert order.attempts[0].failure_code == "authentication_failed"
    order.request_authorization("pm_card_visa", NOW + timedelta(minutes=1))
    assert order.status == OrderStatus.PROCESSING


def test_no_new_attempt_while_the_bank_waits_for_the_buyer() -> None:
    with pytest.raises(IllegalTransition):
        challenged().request_authorization("pm_card_visa", NOW)


def test_a_pending_challenge_is_inquired_until_the_session_ends_never_reviewed() -> None:
    order = challenged()
    attempt = order.attempts[0]
    assert attempt.next_action == Action.INQUIRE and attempt.due_at == NOW + timedelta(seconds=0.5)
    still = answer(PSPStatus.REQUIRES_ACTION, action_url=URL)
    now = NOW
    for _ in range(10):  # far beyond max_attempts: a challenge is no unknown outcome
        now = attempt.due_at or now
        order.record_inquiry(AUTH, 1, still)
        RECOVERY.plan(order, attempt, now)
        assert order.review is None and attempt.due_at is not None and attempt.due_at <= END
    assert [w.task for w in work_for(order, TIMING)] == [Task.INQUIRE, Task.EXPIRE]


def test_an_abandoned_challenge_expires_the_order_and_cancels_the_psp_payment() -> None:
    order = challenged()
    assert [w.task for w in due(order, END - timedelta(seconds=1), TIMING)] == [Task.INQUIRE]
    assert Task.EXPIRE in {w.task for w in due(order, END, TIMING)}
    order.expire(END)
    assert order.status == OrderStatus.EXPIRED
    assert order.attempts[0].failure_code == "challenge_abandoned"
    assert [(w.task, w.number) for w in work_for(order, TIMING)] == [(Task.VOID, 1)]
    void = order.request_void(1, END)
    assert void.purpose == Purpose.COMPENSATION
    order.record_result(CallKind.VOID, void.number, answer(PSPStatus.VOIDED))
    assert order.attempts[0].status == AttemptStatus.VOIDED
    assert order.status == OrderStatus.EXPIRED
    assert due(order, END + timedelta(days=1), TIMING) == []
    assert replayed(order).attempts[0].status == AttemptStatus.VOIDED


def test_a_challenge_completed_after_expiry_is_refunded_never_kept() -> None:
    order = challenged()
    order.expire(END)
    late = answer(PSPStatus.CAPTURED)
    assert order.apply_webhook("evt_late", "payment.captured", AUTH, 1, late)
    assert order.status == OrderStatus.EXPIRED and order.captured_amount == 2550
    assert [w.task for w in work_for(order, TIMING)] == [Task.REFUND]


def test_a_refused_cancel_of_a_completed_challenge_asks_the_psp_then_refunds() -> None:
    order = challenged()
    order.expire(END)
    void = order.request_void(1, END)
    RECOVERY.after_rejection(order, void, "psp_rejected: HTTP 409: invalid_state", END)
    assert void.failed and order.review is None
    assert [w.task for w in due(order, END + timedelta(seconds=1), TIMING)] == [Task.INQUIRE]
    order.record_inquiry(AUTH, 1, answer(PSPStatus.CAPTURED))
    assert [w.task for w in work_for(order, TIMING)] == [Task.REFUND]


def test_a_refused_void_of_anything_else_still_goes_to_review() -> None:
    order = placed("manual")
    order.record_result(AUTH, 1, answer(PSPStatus.AUTHORIZED))
    void = order.request_cancel(NOW)
    assert void is not None
    RECOVERY.after_rejection(order, void, "psp_rejected: HTTP 409", NOW)
    assert order.status == OrderStatus.NEEDS_REVIEW


def test_canceling_during_a_challenge_closes_the_order_and_voids_the_payment() -> None:
    order = challenged()
    assert order.request_cancel(NOW) is None
    assert order.status == OrderStatus.CANCELED and order.attempts[0].next_action is None
    assert [w.task for w in work_for(order, TIMING)] == [Task.VOID]


def test_an_unanswered_payment_still_blocks_expiry() -> None:
    order = placed()
    with pytest.raises(IllegalTransition):
        order.expire(END)


def test_a_challenge_answer_for_another_call_kind_is_a_refusal() -> None:
    order = placed("manual")
    order.record_result(AUTH, 1, answer(PSPStatus.AUTHORIZED))
    capture = order.request_capture(None, NOW)
    order.record_result(CallKind.CAPTURE, capture.number, answer(PSPStatus.REQUIRES_ACTION))
    assert capture.failed and order.status == OrderStatus.AUTHORIZED


def test_a_challenge_learnt_late_by_inquiry_moves_an_unknown_attempt() -> None:
    order = placed()
    order.record_inquiry(AUTH, 1, PSPResult("pay_1", PSPStatus.REQUIRES_ACTION, 2550, "EUR"))
    assert order.status == OrderStatus.REQUIRES_ACTION


def test_an_answer_after_the_session_ended_expires_the_order_first() -> None:
    order = challenged()
    order.end_session_if_over(END - timedelta(seconds=1))
    assert order.status == OrderStatus.REQUIRES_ACTION
    order.end_session_if_over(END)
    order.apply_webhook("evt_late", "payment.captured", AUTH, 1, answer(PSPStatus.CAPTURED))
    assert order.status == OrderStatus.EXPIRED
    assert [w.task for w in work_for(order, TIMING)] == [Task.REFUND]


def test_a_void_overtaken_by_the_buyers_late_completion_fails_and_the_money_is_refunded() -> None:
    order = challenged()
    order.expire(END)
    void = order.request_void(1, END)
    order.apply_webhook("evt_late", "payment.captured", AUTH, 1, answer(PSPStatus.CAPTURED))
    RECOVERY.after_rejection(order, void, "psp_rejected: HTTP 409: invalid_state", END)
    assert void.failed and void.failure_code == "not_cancelable" and order.review is None
    assert [w.task for w in work_for(order, TIMING)] == [Task.REFUND]


def test_a_void_that_found_the_challenge_still_pending_is_sent_again() -> None:
    order = challenged()
    order.expire(END)
    void = order.request_void(1, END)
    order.record_result(CallKind.VOID, void.number, answer(PSPStatus.REQUIRES_ACTION))
    assert void.failed and not order.void_refused(1)
    assert [(w.task, w.number) for w in work_for(order, TIMING)] == [(Task.VOID, 1)]
