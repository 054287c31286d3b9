from __future__ import annotations

from datetime import timedelta

import pytest

from domain.calls import Action, CallKind
from domain.psp import PSPRateLimited, PSPResult, PSPStatus, PSPTimeout, PSPUnavailable
from domain.recovery import Recovery, RetryPolicy
from domain.statuses import AttemptStatus, OrderStatus
from domain.worklist import Task, Timing, work_for
from tests.unit.orders import NOW, TTL, placed

AUTH = CallKind.AUTHORIZE
TIMING = Timing(stale_after=timedelta(seconds=5), reconcile_after=timedelta(hours=1))


@pytest.mark.parametrize("retry", range(8))
def test_full_jitter_stays_under_the_exponential_ceiling(retry: int) -> None:
    policy = RetryPolicy(base_s=0.5, max_s=10.0, max_attempts=5)
    ceiling = min(10.0, 0.5 * 2**retry)
    assert policy.delay(retry, 0.0) == 0.0
    assert policy.delay(retry, 0.999) == pytest.approx(0.999 * ceiling)


def test_retry_after_is_honoured_even_above_the_jitter() -> None:
    policy = RetryPolicy(base_s=0.1, max_s=1.0)
    assert policy.delay(0, 0.5, retry_after_s=7) == 7


def recovery(rand: float = 0.5, attempts: int = 3) -> Recovery:
    return Recovery(RetryPolicy(base_s=1.0, max_s=8.0, max_attempts=attempts), lambda: rand)


def test_a_timeout_schedules_an_inquiry_never_a_resend() -> None:
    order = placed()
    recovery().after_outage(order, order.attempts[0], PSPTimeout("slow"), 1000, NOW)
    attempt = order.attempts[0]
    assert attempt.next_action == Action.INQUIRE
    assert attempt.due_at == NOW + timedelta(seconds=0.5)


def test_a_rate_limit_schedules_a_resend_after_retry_after() -> None:
    order = placed()
    outage = PSPRateLimited("slow down", retry_after_s=5)
    recovery().after_outage(order, order.attempts[0], outage, 3, NOW)
    assert order.attempts[0].next_action == Action.RESEND
    assert order.attempts[0].due_at == NOW + timedelta(seconds=5)


def test_processing_is_followed_up_by_inquiry() -> None:
    order = placed(payment_method="pm_card_processing")
    result = PSPResult("pay_1", PSPStatus.PROCESSING, 2550, "EUR")
    recovery().after_result(order, order.attempts[0], result, NOW)
    assert order.attempts[0].next_action == Action.INQUIRE


def test_an_inquiry_that_finds_nothing_asks_for_an_immediate_resend() -> None:
    order = placed()
    recovery().after_outage(order, order.attempts[0], PSPTimeout("slow"), 1000, NOW)
    assert recovery().after_inquiry(order, order.attempts[0], None, NOW)


def test_spent_budget_fails_a_call_known_not_processed() -> None:
    order = placed()
    rec = recovery(attempts=2)
    for _ in range(3):
        rec.after_outage(order, order.attempts[0], PSPUnavailable("down"), 1, NOW)
    assert order.attempts[0].status == AttemptStatus.FAILED
    assert order.attempts[0].failure_code == "retries_exhausted"
    assert order.status == OrderStatus.FAILED


def test_spent_budget_sends_an_unknown_outcome_to_review() -> None:
    order = placed()
    rec = recovery(attempts=2)
    for _ in range(3):
        rec.after_outage(order, order.attempts[0], PSPTimeout("slow"), 1, NOW)
    assert order.status == OrderStatus.NEEDS_REVIEW
    assert order.review is not None and order.review["reason"].startswith("outcome_unknown")


def test_no_resend_after_the_session_deadline_and_the_order_expires() -> None:
    order = placed()
    recovery().after_outage(order, order.attempts[0], PSPUnavailable("down"), 1, NOW + TTL)
    assert order.attempts[0].failure_code == "session_expired"
    assert order.status == OrderStatus.EXPIRED


def test_compensations_never_give_up() -> None:
    order = placed(capture_method="manual")
    rec = recovery(attempts=1)
    rec.after_outage(order, order.attempts[0], PSPUnavailable("down"), 1, NOW)
    rec.after_outage(order, order.attempts[0], PSPUnavailable("down"), 1, NOW)
    assert order.status == OrderStatus.FAILED
    order.record_result(AUTH, 1, PSPResult("pay_1", PSPStatus.AUTHORIZED, 2550, "EUR"))
    void = order.request_void(1, NOW)
    for _ in range(5):
        rec.after_outage(order, void, PSPTimeout("slow"), 1, NOW)
    assert void.in_flight and void.next_action == Action.INQUIRE
    assert void.due_at == NOW + timedelta(seconds=4)  # half of the 8 s ceiling


def test_no_work_is_planned_while_an_operator_decides() -> None:
    order = placed()
    recovery().after_outage(order, order.attempts[0], PSPTimeout("slow"), 1000, NOW)
    assert work_for(order, TIMING)
    order.send_to_review(AUTH, 1, "outcome_unknown")
    assert work_for(order, TIMING) == []


def test_a_call_given_up_is_asked_about_once_more_later() -> None:
    order = placed(capture_method="manual")
    rec = recovery(attempts=1)
    rec.after_outage(order, order.attempts[0], PSPUnavailable("down"), 1, NOW)
    rec.after_outage(
        order, order.attempts[0], PSPUnavailable("down"), 1, NOW + timedelta(seconds=1)
    )
    assert order.status == OrderStatus.FAILED
    [work] = work_for(order, TIMING)
    assert (work.task, work.due_at) == (Task.INQUIRE, NOW + timedelta(seconds=1, hours=1))
    order.record_inquiry(AUTH, 1, None)
    assert order.attempts[0].reconciled and work_for(order, TIMING) == []


def test_reconciliation_that_finds_a_late_authorization_leads_to_a_void() -> None:
    order = placed(capture_method="manual")
    rec = recovery(attempts=0)
    rec.after_outage(order, order.attempts[0], PSPUnavailable("down"), 1, NOW)
    order.record_inquiry(AUTH, 1, PSPResult("pay_1", PSPStatus.AUTHORIZED, 2550, "EUR"))
    assert order.attempts[0].status == AttemptStatus.AUTHORIZED
    assert [w.task for w in work_for(order, TIMING)] == [Task.VOID]
