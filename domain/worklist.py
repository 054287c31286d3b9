"""What the recovery worker owes an order, and when: the work queue's rules.

Kept in the domain so the work-queue projection (which says *when* to look) and the worker
(which decides *what* to do, from the authoritative aggregate) agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.calls import Action, CallKind, PspCall
from domain.order import CLOSED_TO_AUTHORIZATIONS, PaymentOrder
from domain.statuses import TERMINAL, AttemptStatus, OrderStatus

S = OrderStatus


class Task(StrEnum):
    INQUIRE = "inquire"
    RESEND = "resend"
    EXPIRE = "expire"
    VOID = "void"
    REFUND = "refund"
    CAPTURE = "capture"
    LAPSE = "lapse"


@dataclass(frozen=True)
class Work:
    """One thing to do for an order: a task, the call it concerns, and from when."""

    task: Task
    due_at: datetime
    kind: CallKind = CallKind.AUTHORIZE
    number: int = 0


@dataclass(frozen=True)
class Timing:
    """When the worker looks again: `stale_after` a request went unanswered (its sender may
    have died), and `reconcile_after` a call was given up (one last inquiry)."""

    stale_after: timedelta
    reconcile_after: timedelta


def work_for(order: PaymentOrder, timing: Timing) -> list[Work]:
    """Everything the worker will have to do for this order, with due times."""
    if order.review is not None:
        return []  # an operator decides first
    work = [w for call in order.in_flight() if (w := _call_work(call, timing.stale_after))]
    work += [
        Work(Task.INQUIRE, call.given_up_at + timing.reconcile_after, call.kind, call.number)
        for call in order.calls()
        if call.awaits_reconciliation and call.given_up_at is not None
    ]
    work += _follow_ups(order)
    if (hold := order.hold) is not None and hold.authorization_expires_at is not None:
        work.append(
            Work(Task.LAPSE, hold.authorization_expires_at, CallKind.AUTHORIZE, hold.number)
        )
    open_statuses = (S.PROCESSING, S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_ACTION)
    if order.status in open_statuses and all(c.awaiting_buyer for c in order.in_flight()):
        work.append(Work(Task.EXPIRE, order.expires_at))
    return work


def due(order: PaymentOrder, now: datetime, timing: Timing) -> list[Work]:
    """The work whose time has come."""
    return [w for w in work_for(order, timing) if w.due_at <= now]


def next_due(order: PaymentOrder, timing: Timing) -> Work | None:
    """The earliest work, if any: what the work queue stores."""
    return min(work_for(order, timing), key=lambda w: w.due_at, default=None)


def _call_work(call: PspCall, stale_after: timedelta) -> Work | None:
    if call.next_action is not None and call.due_at is not None:
        task = Task.INQUIRE if call.next_action == Action.INQUIRE else Task.RESEND
        return Work(task, call.due_at, call.kind, call.number)
    if call.awaiting_buyer:
        return None  # the buyer's bank answers by webhook; inquiries are scheduled
    if call.awaiting_response or call.outcome_unknown or call.psp_processing:
        # Sent and nothing recorded since: if its sender died, ask the PSP what happened.
        sent = call.sent_at or call.requested_at
        return Work(Task.INQUIRE, sent + stale_after, call.kind, call.number)
    return None


def _follow_ups(order: PaymentOrder) -> list[Work]:
    """Compensations and captures owed by money the PSP holds."""
    if any(op.in_flight for op in order.operations):
        return []
    work = []
    for attempt in order.attempts:
        since = order.modified_on
        closed = order.status in CLOSED_TO_AUTHORIZATIONS
        challenged = attempt.awaiting_buyer and not order.void_refused(attempt.number)
        if closed and (attempt.status == AttemptStatus.AUTHORIZED or challenged):
            work.append(Work(Task.VOID, since, CallKind.AUTHORIZE, attempt.number))
        elif attempt.status == AttemptStatus.AUTHORIZED and order.auto_capture:
            work.append(Work(Task.CAPTURE, since, CallKind.AUTHORIZE, attempt.number))
        elif attempt.status == AttemptStatus.CAPTURED and _refund_owed(order):
            work.append(Work(Task.REFUND, since, CallKind.AUTHORIZE, attempt.number))
    return work


def _refund_owed(order: PaymentOrder) -> bool:
    """A closed order that still holds captured money gives it back."""
    return order.status in TERMINAL and order.refundable_amount > 0
