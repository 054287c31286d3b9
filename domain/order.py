"""The PaymentOrder aggregate, top layer: capture, cancel, refund, expiry, review, webhooks.

The aggregate is built in three layers so each file reads on its own:
`OrderBase` (placement, state, guards, new attempts) <- `OrderOutcomes` (PSP results,
outages, inquiries, retries, manual review) <- `PaymentOrder` (everything after an
authorization, the session deadline, operators and webhooks).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from eventsourcing.domain import event

from domain.calls import CallKind, Operation, PspCall, Purpose
from domain.cart import prorate, shares_from, shares_to
from domain.errors import IllegalTransition, InvalidInput
from domain.ids import psp_key
from domain.order_outcomes import OrderOutcomes
from domain.psp import PSPResult, PSPStatus
from domain.statuses import TERMINAL, AttemptStatus, OrderStatus

S = OrderStatus
RESOLUTIONS: dict[CallKind, dict[str, bool]] = {
    CallKind.AUTHORIZE: {"authorized": True, "captured": True, "not_charged": False},
    CallKind.CAPTURE: {"captured": True, "not_captured": False},
    CallKind.VOID: {"voided": True, "not_voided": False},
    CallKind.REFUND: {"refunded": True, "not_refunded": False},
}
"""The outcomes an operator may record for a reviewed call, and whether each is a success."""
CLOSED_TO_AUTHORIZATIONS = TERMINAL | {S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED}
"""Order statuses in which an authorized attempt will never be captured: it is voided."""


class PaymentOrder(OrderOutcomes):
    """A buyer's checkout of one cart: the money owed to each seller and every PSP call made."""

    # ----------------------------------------------------------------- follow-up operations

    def request_capture(
        self,
        amount: int | None,
        now: datetime,
        purpose: Purpose = Purpose.MERCHANT,
        request: tuple[str, str] | None = None,
    ) -> Operation:
        """Capture all or part of the authorization (write-ahead record of the PSP call)."""
        if self.status != S.AUTHORIZED:
            raise IllegalTransition(f"a {self.status} order has nothing to capture")
        self.check_nothing_in_flight()
        attempt = self._attempt_in(AttemptStatus.AUTHORIZED)
        amount = attempt.amount if amount is None else amount
        if not 1 <= amount <= attempt.amount:
            raise InvalidInput(f"must be between 1 and {attempt.amount}", field="amount")
        allocation = shares_to(prorate(self.splits, amount))
        return self._start(
            CallKind.CAPTURE, attempt.number, amount, allocation, purpose, now, request
        )

    def request_cancel(
        self, now: datetime, request: tuple[str, str] | None = None
    ) -> Operation | None:
        """Cancel: void an authorization, or close an order that never got one."""
        self.check_nothing_in_flight()
        if self.status == S.AUTHORIZED:
            attempt = self._attempt_in(AttemptStatus.AUTHORIZED)
            return self._start(
                CallKind.VOID, attempt.number, attempt.amount, [], Purpose.MERCHANT, now, request
            )
        if self.status not in (S.REQUIRES_PAYMENT_METHOD, S.PROCESSING):
            raise IllegalTransition(f"a {self.status} order cannot be canceled")
        self._canceled(
            at=now,
            request_key=request[0] if request else None,
            request_fingerprint=request[1] if request else None,
        )
        return None

    def request_refund(
        self,
        amount: int,
        now: datetime,
        purpose: Purpose = Purpose.MERCHANT,
        request: tuple[str, str] | None = None,
    ) -> Operation:
        """Refund part or all of what was captured, split back in proportion."""
        refundable = self.status in (S.SUCCEEDED, S.PARTIALLY_REFUNDED)
        if not (refundable or (purpose == Purpose.COMPENSATION and self.status in TERMINAL)):
            raise IllegalTransition(f"a {self.status} order has nothing to refund")
        self.check_nothing_in_flight()
        remaining = self.remaining_refundable()
        available = sum(s.gross for s in remaining)
        if not 1 <= amount <= available:
            raise InvalidInput(f"must be between 1 and {available}", field="amount")
        attempt = self._attempt_in(AttemptStatus.CAPTURED)
        allocation = shares_to(prorate(remaining, amount))
        return self._start(
            CallKind.REFUND, attempt.number, amount, allocation, purpose, now, request
        )

    def request_void(self, attempt: int, now: datetime) -> Operation:
        """Compensate: release an authorization the order will never use."""
        a = self.attempt(attempt)
        if a.status != AttemptStatus.AUTHORIZED:
            raise IllegalTransition("only an authorized attempt can be voided")
        if self.status not in CLOSED_TO_AUTHORIZATIONS:
            raise IllegalTransition(f"a {self.status} order may still use its authorization")
        if any(
            o.kind == CallKind.VOID and o.attempt == attempt and o.in_flight
            for o in self.operations
        ):
            raise IllegalTransition("a void of this attempt is already in flight")
        return self._start(CallKind.VOID, attempt, a.amount, [], Purpose.COMPENSATION, now)

    class OperationRequested(OrderOutcomes.Event):
        """Write-ahead record of a capture, void or refund (the subclasses name which)."""

        kind: ClassVar[CallKind]
        operation: int
        attempt: int
        amount: int
        allocation: list[dict[str, Any]]
        purpose: str
        psp_idempotency_key: str
        at: datetime
        request_key: str | None
        request_fingerprint: str | None

        def apply(self, aggregate: PaymentOrder) -> None:
            aggregate._remember(self.request_key, self.request_fingerprint)
            aggregate.operations.append(
                Operation(
                    kind=self.kind,
                    number=self.operation,
                    psp_key=self.psp_idempotency_key,
                    amount=self.amount,
                    requested_at=self.at,
                    sent_at=self.at,
                    psp_reference=aggregate.attempt(self.attempt).psp_reference,
                    attempt=self.attempt,
                    purpose=Purpose(self.purpose),
                    allocation=shares_from(self.allocation),
                )
            )

    class CaptureRequested(OperationRequested):
        kind = CallKind.CAPTURE

    class VoidRequested(OperationRequested):
        kind = CallKind.VOID

    class RefundRequested(OperationRequested):
        kind = CallKind.REFUND

    def _start(
        self,
        kind: CallKind,
        attempt: int,
        amount: int,
        allocation: list[dict[str, Any]],
        purpose: str,
        now: datetime,
        request: tuple[str, str] | None = None,
    ) -> Operation:
        number = len(self.operations) + 1
        event_class = {
            CallKind.CAPTURE: self.CaptureRequested,
            CallKind.VOID: self.VoidRequested,
            CallKind.REFUND: self.RefundRequested,
        }[kind]
        self.trigger_event(
            event_class,
            operation=number,
            attempt=attempt,
            amount=amount,
            allocation=allocation,
            purpose=str(purpose),
            psp_idempotency_key=psp_key(self.id, kind, number),
            at=now,
            request_key=request[0] if request else None,
            request_fingerprint=request[1] if request else None,
        )
        return self.operations[-1]

    def _attempt_in(self, status: AttemptStatus) -> PspCall:
        for attempt in reversed(self.attempts):
            if attempt.status == status:
                return attempt
        raise IllegalTransition(f"no {status} attempt")

    @event("Canceled")
    def _canceled(
        self, at: datetime, request_key: str | None, request_fingerprint: str | None
    ) -> None:
        self._remember(request_key, request_fingerprint)
        self._move(S.CANCELED)

    # ----------------------------------------------------------------- session deadline

    def expire(self, now: datetime) -> None:
        """Close a checkout whose session ended without success; nothing may be in flight."""
        if now < self.expires_at:
            raise IllegalTransition("the checkout session has not ended yet")
        if self.status not in (S.PROCESSING, S.REQUIRES_PAYMENT_METHOD):
            raise IllegalTransition(f"a {self.status} order does not expire")
        self.check_nothing_in_flight()
        self._expired(at=now)

    @event("Expired")
    def _expired(self, at: datetime) -> None:
        self._move(S.EXPIRED)

    # ----------------------------------------------------------------- operators

    def resolve(self, outcome: str, note: str, operator: str) -> None:
        """Record an operator's finding for the reviewed call, then the outcome it implies."""
        if self.review is None:
            raise IllegalTransition(f"a {self.status} order is not awaiting review")
        kind, number = CallKind(self.review["kind"]), int(self.review["number"])
        amount = self.review.get("psp_amount")
        outcomes = RESOLUTIONS[kind]
        if outcome not in outcomes:
            raise InvalidInput(f"must be one of {', '.join(outcomes)}", field="outcome")
        if not note.strip():
            raise InvalidInput("a note is required", field="note")
        self._manually_resolved(
            kind=kind.value, number=number, outcome=outcome, note=note, operator=operator
        )
        call = self.call(kind, number)
        if outcomes[outcome]:
            self._record_success(call, self._as_result(call, outcome, amount))
        else:
            self._call_failed(
                kind=kind.value,
                number=number,
                code="manual_review",
                message=note,
                ends_order=kind == CallKind.AUTHORIZE,
            )

    def _as_result(self, call: PspCall, outcome: str, psp_amount: int | None) -> PSPResult:
        """The PSP answer an operator's finding stands for: for an amount the PSP reported
        differently, what the PSP holds, never what we asked for."""
        status = PSPStatus(outcome) if outcome in set(PSPStatus) else PSPStatus.CAPTURED
        amount = call.amount if psp_amount is None else psp_amount
        return PSPResult(call.psp_reference or "manual", status, amount, self.currency)

    @event("ManuallyResolved")
    def _manually_resolved(
        self, kind: str, number: int, outcome: str, note: str, operator: str
    ) -> None:
        call = self.call(kind, number)
        call.mark_in_flight(unknown=False)
        self.status, self.review = S((self.review or {})["since"]), None

    # ----------------------------------------------------------------- webhooks

    def apply_webhook(
        self, event_id: str, event_type: str, kind: CallKind, number: int, result: PSPResult
    ) -> bool:
        """Apply a verified PSP notification once; stale or duplicate ones change nothing."""
        call = self.call(kind, number)
        if event_id in self.webhook_ids or not self.accepts_result(call, result):
            return False
        self._webhook_applied(
            event_id=event_id,
            event_type=event_type,
            kind=kind.value,
            number=number,
            psp_reference=result.psp_reference,
        )
        self.record_result(kind, number, result)
        return True

    @event("WebhookApplied")
    def _webhook_applied(
        self, event_id: str, event_type: str, kind: str, number: int, psp_reference: str
    ) -> None:
        self.webhook_ids.add(event_id)
