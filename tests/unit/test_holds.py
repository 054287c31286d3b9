"""Authorization holds lapse: known from the PSP, refused for capture after, recorded and
released by the worker rather than left hanging."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.calls import CallKind, Purpose
from domain.errors import AuthorizationExpired, IllegalTransition
from domain.order import PaymentOrder
from domain.psp import PSPStatus
from domain.statuses import AttemptStatus, OrderStatus
from domain.worklist import Task, Timing, work_for
from projections.documents import order_document
from tests.unit.orders import NOW, answer, placed, replayed

TIMING = Timing(stale_after=timedelta(seconds=5), reconcile_after=timedelta(hours=1))
LAPSES = NOW + timedelta(days=7)


def authorized() -> PaymentOrder:
    order = placed("manual")
    held = answer(PSPStatus.AUTHORIZED, authorization_expires_at=LAPSES)
    order.record_result(CallKind.AUTHORIZE, 1, held)
    return order


def test_the_hold_end_is_recorded_shown_and_replayed() -> None:
    order = authorized()
    assert order.attempts[0].authorization_expires_at == LAPSES
    assert replayed(order).attempts[0].authorization_expires_at == LAPSES
    attempt = order_document(order)["attempts"][0]
    assert attempt["authorization_expires_at"] == "2026-11-30T12:00:00Z"
    assert [(w.task, w.due_at) for w in work_for(order, TIMING)] == [(Task.LAPSE, LAPSES)]


def test_a_capture_before_the_lapse_goes_ahead_and_after_it_is_refused() -> None:
    order = authorized()
    with pytest.raises(AuthorizationExpired, match="released the authorization"):
        order.request_capture(None, LAPSES)
    assert order.request_capture(None, LAPSES - timedelta(seconds=1)).kind == CallKind.CAPTURE


def test_a_lapsed_hold_expires_the_order_and_is_released_at_the_psp() -> None:
    order = authorized()
    with pytest.raises(IllegalTransition):
        order.lapse_hold(LAPSES - timedelta(seconds=1))
    order.lapse_hold(LAPSES)
    assert order.status == OrderStatus.EXPIRED
    assert order.attempts[0].failure_code == "authorization_expired"
    assert [w.task for w in work_for(order, TIMING)] == [Task.VOID]
    void = order.request_void(1, LAPSES)
    assert void.purpose == Purpose.COMPENSATION
    order.record_result(CallKind.VOID, void.number, answer(PSPStatus.VOIDED))
    assert order.attempts[0].status == AttemptStatus.VOIDED and work_for(order, TIMING) == []
    with pytest.raises(AuthorizationExpired):
        order.request_capture(None, LAPSES)


def test_an_authorization_without_a_known_end_never_lapses() -> None:
    order = placed("manual")
    order.record_result(CallKind.AUTHORIZE, 1, answer(PSPStatus.AUTHORIZED))
    assert order.hold is None and work_for(order, TIMING) == []
    with pytest.raises(IllegalTransition):
        order.lapse_hold(LAPSES)
