"""What happens after each PSP answer or outage: the next step for a call, as domain policy.

Full-jitter exponential backoff, `Retry-After` honoured, bounded by the retry budget and by
the session deadline. A call whose outcome is unknown is always inquired before it is sent
again; when the budget is spent, an unknown goes to manual review and a call known not to
have been processed fails (no money moved). Compensations never give up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.calls import Action, CallKind, PspCall, Purpose
from domain.order import PaymentOrder
from domain.psp import PSPOutage, PSPResult
from domain.statuses import TERMINAL, AttemptStatus, OrderStatus


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff settings: PAYMENTS_RETRY_BASE_S, PAYMENTS_RETRY_MAX_S, PAYMENTS_MAX_ATTEMPTS."""

    base_s: float = 1.0
    max_s: float = 60.0
    max_attempts: int = 5

    def delay(self, retry: int, rand: float, retry_after_s: float | None = None) -> float:
        """Uniform in [0, min(max, base * 2**retry)], and never sooner than Retry-After."""
        ceiling = min(self.max_s, self.base_s * 2.0**retry)
        return float(max(rand * ceiling, retry_after_s or 0.0))


@dataclass(frozen=True)
class Recovery:
    """Decides and records the next step for a call; `rand` gives the jitter in [0, 1)."""

    policy: RetryPolicy
    rand: Callable[[], float]

    def after_result(
        self, order: PaymentOrder, call: PspCall, result: PSPResult, now: datetime
    ) -> None:
        """Record a PSP answer; a 'processing' answer (or a challenge) is followed up by
        inquiry."""
        order.record_result(call.kind, call.number, result)
        self.plan(order, call, now)
        self._after_void(order, call, now)

    def after_rejection(
        self, order: PaymentOrder, call: PspCall, reason: str, now: datetime
    ) -> None:
        """The PSP refused a request we built (a 4xx): manual review, except for the void of
        a challenged payment, which the buyer may have just completed (the payment's state
        is known, or inquiries find it out)."""
        if call.kind == CallKind.VOID and _completed_or_challenged(order, call):
            order.fail_call(call.kind, call.number, "not_cancelable", reason, ends_order=False)
            self._after_void(order, call, now)
            return
        order.send_to_review(call.kind, call.number, reason)

    def _after_void(self, order: PaymentOrder, call: PspCall, now: datetime) -> None:
        """A refused void of a challenged attempt: ask the PSP what its payment holds now."""
        if call.kind == CallKind.VOID and call.failed and _challenged(order, call):
            self.plan(order, order.attempt(order.operation(call.number).attempt), now)

    def after_outage(
        self, order: PaymentOrder, call: PspCall, outage: PSPOutage, elapsed_ms: int, now: datetime
    ) -> None:
        """Record an outage and schedule the inquiry or resend it calls for."""
        order.record_outage(call.kind, call.number, outage, elapsed_ms)
        self.plan(order, call, now, outage.retry_after_s)

    def after_inquiry(
        self, order: PaymentOrder, call: PspCall, result: PSPResult | None, now: datetime
    ) -> bool:
        """Record an inquiry; True when the call should be resent right away (never arrived)."""
        order.record_inquiry(call.kind, call.number, result)
        if result is None and self._may_resend(order, call, now):
            return True
        self.plan(order, call, now)
        self._after_void(order, call, now)
        return False

    def after_failed_inquiry(
        self, order: PaymentOrder, call: PspCall, outage: PSPOutage, now: datetime
    ) -> None:
        """The inquiry itself went unanswered: ask again later (never resend blind)."""
        if not call.in_flight or order.review is not None:
            return
        if call.awaiting_buyer:
            self._plan_challenge(order, call, now)
            return
        if call.retries >= self.policy.max_attempts and not _never_gives_up(order, call):
            reason = f"outcome_unknown: the PSP did not answer {call.retries} inquiries"
            order.send_to_review(call.kind, call.number, reason)
            return
        delay = self.policy.delay(call.retries, self.rand(), outage.retry_after_s)
        due = now + timedelta(seconds=delay)
        order.schedule_retry(call.kind, call.number, Action.INQUIRE, due, f"inquiry_{outage.code}")

    def plan(
        self,
        order: PaymentOrder,
        call: PspCall,
        now: datetime,
        retry_after_s: float | None = None,
    ) -> None:
        """Schedule the next step for a call still in flight, or give it up."""
        if not call.in_flight or order.review is not None:
            return
        if call.awaiting_buyer:
            self._plan_challenge(order, call, now)
            return
        if self._gives_up(order, call, now):
            self._give_up(order, call, now)
            return
        unknown = call.outcome_unknown or call.psp_processing
        action = Action.INQUIRE if unknown else Action.RESEND
        delay = self.policy.delay(call.retries, self.rand(), retry_after_s)
        reason = call.failure_code or "psp_processing"
        order.schedule_retry(call.kind, call.number, action, now + timedelta(seconds=delay), reason)

    def _plan_challenge(self, order: PaymentOrder, call: PspCall, now: datetime) -> None:
        """Ask the PSP about a pending challenge now and then (its webhook may be lost) until
        the session ends; then the order expires and compensation cancels the payment. On a
        closed order the challenge is only asked about once a void of it was refused."""
        closed = order.status in TERMINAL
        if closed and not order.void_refused(call.number):
            return
        if not closed and now >= order.expires_at:
            return
        due = now + timedelta(seconds=self.policy.delay(call.retries, self.rand()))
        if not closed:
            due = min(due, order.expires_at)
        order.schedule_retry(call.kind, call.number, Action.INQUIRE, due, "challenge_pending")

    def _may_resend(self, order: PaymentOrder, call: PspCall, now: datetime) -> bool:
        return call.in_flight and not self._gives_up(order, call, now)

    def _gives_up(self, order: PaymentOrder, call: PspCall, now: datetime) -> bool:
        if _never_gives_up(order, call):
            return False
        known_unsent = not (call.outcome_unknown or call.psp_processing)
        past_deadline = call.kind == CallKind.AUTHORIZE and now >= order.expires_at
        return call.retries >= self.policy.max_attempts or (known_unsent and past_deadline)

    def _give_up(self, order: PaymentOrder, call: PspCall, now: datetime) -> None:
        if call.outcome_unknown or call.psp_processing:
            reason = f"outcome_unknown: no answer after {call.retries} retries and inquiries"
            order.send_to_review(call.kind, call.number, reason)
            return
        expired = call.kind == CallKind.AUTHORIZE and now >= order.expires_at
        code = "session_expired" if expired else "retries_exhausted"
        message = (
            "the session ended before the PSP took the request"
            if expired
            else (f"the PSP did not take the request in {call.tries} tries")
        )
        ends_order = call.kind == CallKind.AUTHORIZE and not expired
        order.fail_call(call.kind, call.number, code, message, ends_order=ends_order, at=now)
        if expired and not order.in_flight() and order.status == OrderStatus.PROCESSING:
            order.expire(now)


def _challenged(order: PaymentOrder, call: PspCall) -> bool:
    """The operation's attempt still waits for the buyer's bank, as far as we know."""
    return order.attempt(order.operation(call.number).attempt).awaiting_buyer


def _completed_or_challenged(order: PaymentOrder, call: PspCall) -> bool:
    """A void of a challenged attempt that its bank's answer overtook: the attempt is
    captured (a refund follows) or still challenged as far as we know (inquiries follow)."""
    attempt = order.attempt(order.operation(call.number).attempt)
    challenged = attempt.awaiting_buyer or attempt.action_url is not None
    return challenged and attempt.status != AttemptStatus.AUTHORIZED


def _never_gives_up(order: PaymentOrder, call: PspCall) -> bool:
    """Compensations (and anything on a closed order) retry at the ceiling until they succeed."""
    purpose = getattr(call, "purpose", None)
    return purpose == Purpose.COMPENSATION or order.status in TERMINAL
