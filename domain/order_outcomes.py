"""The second layer of the PaymentOrder aggregate: what the PSP answered, or failed to.

Every PSP call ends in exactly one recorded outcome. Until then it is pending (known not
processed, or accepted and processing) or unknown (timeout, dropped connection, 5xx after
processing) and the recovery worker drives it: inquiry first, then resend, bounded retries,
and manual review when nothing else can tell.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.domain import event

from domain.calls import NOT_RECEIVED, Action, CallKind, PspCall
from domain.cart import add_shares, prorate, shares_from, shares_to
from domain.errors import IllegalTransition
from domain.order_base import OrderBase
from domain.psp import PSPOutage, PSPResult, PSPServerError, PSPStatus, PSPTimeout
from domain.statuses import TERMINAL, AttemptStatus, OrderStatus

S = OrderStatus
_SUCCESS = {
    CallKind.AUTHORIZE: {PSPStatus.AUTHORIZED, PSPStatus.CAPTURED},
    CallKind.CAPTURE: {PSPStatus.CAPTURED},
    CallKind.VOID: {PSPStatus.VOIDED},
    CallKind.REFUND: {PSPStatus.REFUNDED},
}


class OrderOutcomes(OrderBase):
    """Recording PSP results, outages, inquiries, retries, failures and manual review."""

    # ----------------------------------------------------------------- results

    def accepts_result(self, call: PspCall, result: PSPResult) -> bool:
        """A result applies to a call in flight, or reveals that a call given up succeeded."""
        if result.status == PSPStatus.PROCESSING:
            return call.in_flight and not call.psp_processing
        late_success = call.failed and result.status in _SUCCESS[call.kind]
        return call.in_flight or (late_success and self._late_success_fits(call, result))

    def _late_success_fits(self, call: PspCall, result: PSPResult) -> bool:
        """A call we gave up turns out to have worked: record it if the money allows it.

        A PSP cannot capture or void an authorization twice, nor refund more than it holds;
        a report that it did is not recorded as fact (the audit trail keeps the webhook).
        """
        if call.kind == CallKind.AUTHORIZE:
            return True
        attempt = self.attempt(self.operation(call.number).attempt)
        if call.kind in (CallKind.CAPTURE, CallKind.VOID):
            return attempt.status == AttemptStatus.AUTHORIZED
        return result.amount <= sum(s.gross for s in self.remaining_refundable())

    def record_result(self, kind: CallKind, number: int, result: PSPResult) -> None:
        """Record the PSP's answer for a call; a no-op when that outcome is already known."""
        call = self.call(kind, number)
        if not self.accepts_result(call, result):
            return
        if result.status == PSPStatus.PROCESSING:
            self._psp_processing(kind=kind.value, number=number, psp_reference=result.psp_reference)
        elif result.status not in _SUCCESS[call.kind]:
            self._record_refusal(call, result)
        elif self._mismatched(call, result):
            self._record_mismatch(call, result)
        else:
            self._record_success(call, result)

    def _mismatched(self, call: PspCall, result: PSPResult) -> bool:
        return result.amount != call.amount or result.currency != self.currency

    def _record_mismatch(self, call: PspCall, result: PSPResult) -> None:
        """Never accept a different amount silently: review it. On a closed order, or for a
        call already given up, record what the PSP really holds so that compensation
        returns exactly that."""
        if self.review is not None:
            return
        if self.status in TERMINAL or not call.in_flight:
            self._record_success(call, result)
            return
        got = f"{result.amount} {result.currency}"
        reason = f"amount_mismatch: sent {call.amount} {self.currency}, PSP answered {got}"
        self._review(call, reason, result.psp_reference, result.amount)

    def _record_refusal(self, call: PspCall, result: PSPResult) -> None:
        code = result.decline_code or f"unexpected_{result.status}"
        message = result.decline_message or code.replace("_", " ")
        if call.kind == CallKind.AUTHORIZE:
            self._declined(
                attempt=call.number, psp_reference=result.psp_reference, code=code, message=message
            )
        else:
            self._call_failed(
                kind=call.kind.value,
                number=call.number,
                code=code,
                message=message,
                ends_order=False,
            )

    def _record_success(self, call: PspCall, result: PSPResult) -> None:
        ref = result.psp_reference
        if call.kind == CallKind.AUTHORIZE and result.status == PSPStatus.AUTHORIZED:
            self._authorized(attempt=call.number, psp_reference=ref, amount=result.amount)
        elif call.kind == CallKind.AUTHORIZE:
            allocation = shares_to(prorate(self.splits, result.amount))
            self._captured(
                attempt=call.number,
                operation=None,
                psp_reference=ref,
                amount=result.amount,
                allocation=allocation,
            )
        else:
            self._record_operation_success(call, ref)

    def _record_operation_success(self, call: PspCall, psp_reference: str) -> None:
        op = self.operation(call.number)
        allocation = shares_to(op.allocation)
        if op.kind == CallKind.CAPTURE:
            self._captured(
                attempt=op.attempt,
                operation=op.number,
                psp_reference=psp_reference,
                amount=op.amount,
                allocation=allocation,
            )
        elif op.kind == CallKind.VOID:
            self._voided(operation=op.number, attempt=op.attempt)
        else:
            self._refunded(
                operation=op.number,
                psp_reference=psp_reference,
                amount=op.amount,
                allocation=allocation,
            )

    @event("PSPProcessing")
    def _psp_processing(self, kind: str, number: int, psp_reference: str) -> None:
        call = self.call(kind, number)
        call.mark_in_flight(unknown=False)
        call.psp_processing, call.psp_reference = True, psp_reference
        call.schedule(None, None)

    @event("Authorized")
    def _authorized(self, attempt: int, psp_reference: str, amount: int) -> None:
        a = self.attempt(attempt)
        a.status, a.psp_reference = AttemptStatus.AUTHORIZED, psp_reference
        a.note_failure(None, None)
        self._settle(a, {S.PROCESSING: S.AUTHORIZED})

    @event("Captured")
    def _captured(
        self,
        attempt: int,
        operation: int | None,
        psp_reference: str,
        amount: int,
        allocation: list[dict[str, Any]],
    ) -> None:
        a = self.attempt(attempt)
        a.status, a.psp_reference = AttemptStatus.CAPTURED, psp_reference
        a.note_failure(None, None)
        self.captured = add_shares(self.captured, shares_from(allocation))
        settled = a if operation is None else self.operation(operation)
        if operation is not None:
            self.operation(operation).mark_succeeded(psp_reference)
        self._settle(settled, {S.PROCESSING: S.SUCCEEDED, S.AUTHORIZED: S.SUCCEEDED})

    @event("Declined")
    def _declined(self, attempt: int, psp_reference: str, code: str, message: str) -> None:
        a = self.attempt(attempt)
        a.status, a.psp_reference = AttemptStatus.DECLINED, psp_reference
        a.note_failure(code, message)
        self._settle(a, {S.PROCESSING: S.REQUIRES_PAYMENT_METHOD})

    @event("Voided")
    def _voided(self, operation: int, attempt: int) -> None:
        op = self.operation(operation)
        op.mark_succeeded(None)
        self.attempt(attempt).status = AttemptStatus.VOIDED
        moves = {S.AUTHORIZED: S.CANCELED} if op.purpose == "merchant" else {}
        self._settle(op, moves)

    @event("Refunded")
    def _refunded(
        self, operation: int, psp_reference: str, amount: int, allocation: list[dict[str, Any]]
    ) -> None:
        self.operation(operation).mark_succeeded(psp_reference)
        self.refunded = add_shares(self.refunded, shares_from(allocation))
        done = S.REFUNDED if self.refunded_amount >= self.captured_amount else S.PARTIALLY_REFUNDED
        self._settle(self.operation(operation), {S.SUCCEEDED: done, S.PARTIALLY_REFUNDED: done})

    def _settle(self, call: PspCall, moves: dict[OrderStatus, OrderStatus]) -> None:
        """A call got its outcome: stop scheduling it, end its review, move the order."""
        call.schedule(None, None)
        call.psp_processing = False
        if self.review and (self.review["kind"], self.review["number"]) == (call.kind, call.number):
            self.status, self.review = S(self.review["since"]), None
        if self.review:
            # Under review for another call: the outcome moves the status it returns to.
            since = S(self.review["since"])
            self.review["since"] = moves.get(since, since) if since not in TERMINAL else since
        elif self.status not in TERMINAL and self.status in moves:
            self._move(moves[self.status])

    # ----------------------------------------------------------------- outages

    def record_outage(
        self, kind: CallKind, number: int, outage: PSPOutage, elapsed_ms: int
    ) -> None:
        """Record that the PSP did not answer; whether it processed the call may be unknown."""
        if not self.call(kind, number).in_flight:
            return
        if isinstance(outage, PSPTimeout):
            self._psp_timed_out(kind=kind.value, number=number, elapsed_ms=elapsed_ms)
            return
        self._psp_errored(
            kind=kind.value,
            number=number,
            processed=outage.processed,
            status_code=outage.status_code if isinstance(outage, PSPServerError) else None,
            code=outage.code,
            message=outage.message[:300],
            retry_after_s=outage.retry_after_s,
        )

    @event("PSPTimedOut")
    def _psp_timed_out(self, kind: str, number: int, elapsed_ms: int) -> None:
        call = self.call(kind, number)
        call.mark_in_flight(unknown=True)
        call.note_failure("psp_timeout", f"no answer from the PSP within {elapsed_ms} ms")

    @event("PSPErrored")
    def _psp_errored(
        self,
        kind: str,
        number: int,
        processed: bool | None,
        status_code: int | None,
        code: str,
        message: str,
        retry_after_s: float | None,
    ) -> None:
        call = self.call(kind, number)
        call.mark_in_flight(unknown=processed is not False)
        call.note_failure(code, message)

    # ----------------------------------------------------------------- inquiries and retries

    def record_inquiry(self, kind: CallKind, number: int, result: PSPResult | None) -> None:
        """Record what an inquiry by idempotency key found, then the outcome it reveals."""
        call = self.call(kind, number)
        late = result is not None and self.accepts_result(call, result)
        if not (call.in_flight or call.awaits_reconciliation or late):
            return
        self._outcome_inquired(
            kind=kind.value,
            number=number,
            found=result is not None,
            psp_status=result.status.value if result else None,
            psp_reference=result.psp_reference if result else None,
        )
        if result is not None:
            self.record_result(kind, number, result)

    @event("OutcomeInquired")
    def _outcome_inquired(
        self,
        kind: str,
        number: int,
        found: bool,
        psp_status: str | None,
        psp_reference: str | None,
    ) -> None:
        call = self.call(kind, number)
        call.inquiries += 1
        call.schedule(None, None)
        call.reconciled = call.reconciled or call.failed
        if not found and call.in_flight:
            call.mark_in_flight(unknown=False)
            call.note_failure(NOT_RECEIVED, "the PSP never received the request")

    def schedule_retry(
        self, kind: CallKind, number: int, action: Action, due_at: datetime, reason: str
    ) -> None:
        """Durably schedule the worker's next step for a call in flight."""
        call = self.call(kind, number)
        if not call.in_flight:
            raise IllegalTransition("only a call in flight can be retried")
        if action == Action.RESEND and call.outcome_unknown:
            raise IllegalTransition("an unknown outcome is inquired before anything is resent")
        self._retry_scheduled(
            kind=kind.value,
            number=number,
            action=action.value,
            due_at=due_at,
            retry=call.retries + 1,
            reason=reason,
        )

    @event("RetryScheduled")
    def _retry_scheduled(
        self, kind: str, number: int, action: str, due_at: datetime, retry: int, reason: str
    ) -> None:
        call = self.call(kind, number)
        call.retries = retry
        call.schedule(Action(action), due_at)

    # ----------------------------------------------------------------- giving up

    def fail_call(
        self,
        kind: CallKind,
        number: int,
        code: str,
        message: str,
        *,
        ends_order: bool,
        at: datetime | None = None,
    ) -> None:
        """Give up a call known not to have been processed; no money moved. `at` (the
        worker's giving up) makes reconciliation ask the PSP about it once more, later."""
        call = self.call(kind, number)
        if not call.in_flight or call.outcome_unknown:
            raise IllegalTransition("only a call known not to have been processed can fail")
        if ends_order:
            self.check_transition(S.FAILED)
        self._call_failed(
            kind=kind.value,
            number=number,
            code=code,
            message=message,
            ends_order=ends_order,
            given_up_at=at,
        )

    @event("CallFailed")
    def _call_failed(
        self,
        kind: str,
        number: int,
        code: str,
        message: str,
        ends_order: bool,
        given_up_at: datetime | None = None,
    ) -> None:
        call = self.call(kind, number)
        call.mark_failed(code, message)
        call.given_up_at = given_up_at
        self._settle(call, {S.PROCESSING: S.FAILED} if ends_order else {})

    def send_to_review(self, kind: CallKind, number: int, reason: str) -> None:
        """Dead-letter a call whose outcome no automatic step can establish."""
        self._review(self.call(kind, number), reason, None, None)

    def _review(
        self, call: PspCall, reason: str, psp_reference: str | None, psp_amount: int | None
    ) -> None:
        """Queue a call for an operator. An open order shows `needs_review`; a closed one
        keeps its final status (a terminal state stays terminal) and is flagged instead."""
        if not call.in_flight:
            raise IllegalTransition("only a call in flight goes to manual review")
        if self.review is not None:
            raise IllegalTransition("the order already awaits an operator")
        self._sent_to_manual_review(
            kind=call.kind.value,
            number=call.number,
            reason=reason,
            psp_reference=psp_reference,
            psp_amount=psp_amount,
        )

    @event("SentToManualReview")
    def _sent_to_manual_review(
        self, kind: str, number: int, reason: str, psp_reference: str | None, psp_amount: int | None
    ) -> None:
        call = self.call(kind, number)
        call.mark_in_flight(unknown=True)
        call.schedule(None, None)
        call.psp_reference = psp_reference or call.psp_reference
        call.note_failure(reason.split(":", 1)[0], reason)
        self.review = {
            "kind": kind,
            "number": number,
            "reason": reason,
            "since": self.status,
            "psp_amount": psp_amount,
        }
        if self.status not in TERMINAL:
            self._move(S.NEEDS_REVIEW)
