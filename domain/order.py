"""The PaymentOrder aggregate: a buyer's checkout of one cart and every PSP call made for it.

Commands are undecorated methods: they check guards (raising DomainError before anything
changes), read clocks and derive ids, then call a private @event method whose body only
applies the event. Replaying the events rebuilds exactly the same state. Pure decisions
(what a PSP answer means, which status it moves the order to) live in `domain.outcomes`;
every event has an explicit stored name (`topic=`), whatever the class layout, and the
names earlier versions stored are mapped in `domain.event_names`.

Every PSP call ends in exactly one recorded outcome. Until then it is pending (known not
processed, or accepted and processing) or unknown (timeout, dropped connection, 5xx after
processing) and the recovery worker drives it: inquiry first, then resend, bounded retries,
and manual review when nothing else can tell.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import event_names
from domain.calls import NOT_RECEIVED, Action, Attempt, CallKind, Operation, PspCall, Purpose
from domain.cart import (
    Checkout,
    LineItem,
    SellerShare,
    add_shares,
    check_payment_method,
    prorate,
    shares_from,
    shares_to,
    split,
    sub_shares,
)
from domain.disputes import (
    OUTCOMES as DISPUTE_OUTCOMES,
)
from domain.disputes import (
    Dispute,
    DisputeNotice,
    DisputeStatus,
    Liability,
)
from domain.errors import (
    AuthorizationExpired,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidInput,
)
from domain.ids import order_id_for, psp_key
from domain.outcomes import (
    CLOSED_TO_AUTHORIZATIONS,
    MOVES,
    RESOLUTIONS,
    Verdict,
    accepts,
    refund_moves,
    settle,
    verdict,
)
from domain.psp import PSPOutage, PSPResult, PSPServerError, PSPStatus, PSPTimeout
from domain.statuses import TERMINAL, AttemptStatus, OrderStatus, can_move

S = OrderStatus
MAX_ATTEMPTS_PER_ORDER = 10
"""New payment methods a buyer may try on one order (a brake on card testing)."""

__all__ = ["CLOSED_TO_AUTHORIZATIONS", "MAX_ATTEMPTS_PER_ORDER", "RESOLUTIONS", "PaymentOrder"]


class PaymentOrder(Aggregate):
    """A buyer's checkout of one cart: the money owed to each seller and every PSP call made."""

    TOPIC = "PaymentOrder"
    """The stored name of the aggregate; each event's is beside it (`topic=`). The library
    refuses to define an event without one."""

    class Created(Aggregate.Created):
        TOPIC = "PaymentOrder.Created"  # the library's base of `Placed`; never stored

    @staticmethod
    def create_id(client_id: str, idempotency_key: str) -> UUID:
        return order_id_for(client_id, idempotency_key)

    @classmethod
    def place(
        cls,
        checkout: Checkout,
        *,
        client_id: str,
        idempotency_key: str,
        fee_bps: int,
        now: datetime,
        session_ttl: timedelta,
    ) -> Self:
        """Record a new checkout; its first attempt is requested separately."""
        return cls(
            client_id=client_id,
            idempotency_key=idempotency_key,
            fingerprint=checkout.fingerprint(),
            buyer_id=checkout.buyer_id,
            currency=checkout.currency,
            amount=checkout.amount,
            items=[asdict(item) for item in checkout.items],
            splits=shares_to(split(checkout.items, fee_bps)),
            platform_fee_bps=fee_bps,
            capture_method=checkout.capture_method,
            expires_at=now + session_ttl,
        )

    @event("Placed", topic="PaymentOrder.Placed")
    def __init__(
        self,
        client_id: str,
        idempotency_key: str,
        fingerprint: str,
        buyer_id: str,
        currency: str,
        amount: int,
        items: list[dict[str, Any]],
        splits: list[dict[str, Any]],
        platform_fee_bps: int,
        capture_method: str,
        expires_at: datetime,
    ) -> None:
        self.client_id = client_id
        self.idempotency_key = idempotency_key
        self.fingerprint = fingerprint
        self.buyer_id = buyer_id
        self.currency = currency
        self.amount = amount
        self.items = tuple(LineItem(**item) for item in items)
        self.splits = shares_from(splits)
        self.platform_fee_bps = platform_fee_bps
        self.capture_method = capture_method
        self.expires_at = expires_at
        self.status = S.PROCESSING
        self.attempts: list[Attempt] = []
        self.operations: list[Operation] = []
        self.captured = tuple(SellerShare(s.seller_id, 0, 0, 0) for s in self.splits)
        self.refunded = self.captured
        self.review: dict[str, Any] | None = None
        self.webhook_ids: set[str] = set()
        self.request_keys: dict[str, str] = {}
        self.disputes: dict[str, Dispute] = {}

    # ----------------------------------------------------------------- derived state

    @property
    def auto_capture(self) -> bool:
        return self.capture_method == "automatic"

    @property
    def captured_amount(self) -> int:
        return sum(s.gross for s in self.captured)

    @property
    def refunded_amount(self) -> int:
        return sum(s.gross for s in self.refunded)

    def attempt(self, number: int) -> Attempt:
        """Attempt `number` (1-based)."""
        if not 1 <= number <= len(self.attempts):
            raise InvalidInput(f"no attempt {number}", field="attempt")
        return self.attempts[number - 1]

    def operation(self, number: int) -> Operation:
        """Follow-up operation `number` (1-based)."""
        if not 1 <= number <= len(self.operations):
            raise InvalidInput(f"no operation {number}", field="operation")
        return self.operations[number - 1]

    def call(self, kind: CallKind | str, number: int) -> PspCall:
        """An attempt (kind authorize) or an operation (capture, void, refund)."""
        if CallKind(kind) == CallKind.AUTHORIZE:
            return self.attempt(number)
        return self.operation(number)

    def calls(self) -> list[PspCall]:
        return [*self.attempts, *self.operations]

    def in_flight(self) -> list[PspCall]:
        return [c for c in self.calls() if c.in_flight]

    @property
    def awaiting_psp(self) -> bool:
        """A request was sent and nothing has been recorded since (its sender may be alive)."""
        return any(c.awaiting_response for c in self.calls())

    @property
    def disputed_amount(self) -> int:
        """Money the buyer's bank took back or holds: open and lost disputes."""
        return sum(d.amount for d in self.disputes.values() if d.status != DisputeStatus.WON)

    @property
    def refundable_amount(self) -> int:
        """What a refund may still return: captured, not refunded nor being refunded, and
        not taken back by a dispute (Stripe refuses refunds of disputed money too)."""
        return max(0, sum(s.gross for s in self.remaining_refundable()) - self.disputed_amount)

    def remaining_refundable(self) -> tuple[SellerShare, ...]:
        """What is captured and not yet refunded (nor being refunded), per seller."""
        pending = [o for o in self.operations if o.kind == CallKind.REFUND and o.in_flight]
        taken = add_shares(self.refunded, *(o.allocation for o in pending))
        return sub_shares(self.captured, taken)

    # ----------------------------------------------------------------- guards

    def check_transition(self, target: OrderStatus) -> None:
        """Raise IllegalTransition unless the order may move to `target`."""
        if not can_move(self.status, target):
            raise IllegalTransition(f"a {self.status} order cannot become {target}")

    def check_can_start_attempt(self, now: datetime) -> None:
        """A new attempt needs a payment method to be required, or none tried yet."""
        fresh = self.status == S.PROCESSING and not self.attempts
        if not (fresh or self.status == S.REQUIRES_PAYMENT_METHOD):
            raise IllegalTransition(f"a {self.status} order takes no new attempt")
        if now >= self.expires_at:
            raise IllegalTransition("the checkout session has expired")
        if len(self.attempts) >= MAX_ATTEMPTS_PER_ORDER:
            raise IllegalTransition(f"at most {MAX_ATTEMPTS_PER_ORDER} attempts per order")

    def replays(self, request_key: str | None, fingerprint: str) -> bool:
        """True when this Idempotency-Key already did exactly this on the order."""
        seen = self.request_keys.get(request_key) if request_key else None
        if seen is None:
            return False
        if seen != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request", field="Idempotency-Key"
            )
        return True

    def check_nothing_in_flight(self, *, but_challenges: bool = False) -> None:
        """Most commands wait until every PSP call has a recorded outcome; closing an order
        (`but_challenges`) need not wait for a buyer who may never answer their bank."""
        calls = self.in_flight()
        if but_challenges:
            calls = [c for c in calls if not c.awaiting_buyer]
        if calls:
            raise IllegalTransition("a PSP call for this order is still in flight")

    @property
    def challenge(self) -> Attempt | None:
        """The attempt whose 3-D Secure challenge the buyer has yet to answer, if any."""
        return next((a for a in self.attempts if a.awaiting_buyer), None)

    def void_refused(self, attempt: int) -> bool:
        """A void of this attempt was refused: the PSP's payment moved on (a challenge the
        buyer completed as the order closed), so inquiries find out what it holds now."""
        return any(
            o.kind == CallKind.VOID
            and o.attempt == attempt
            and o.failed
            and o.failure_code == "not_cancelable"
            for o in self.operations
        )

    @property
    def next_action(self) -> dict[str, Any] | None:
        """What the buyer must do for the payment to go on: confirm with their bank."""
        if self.status != S.REQUIRES_ACTION:
            return None  # asked of every document: the status first, the attempts only then
        attempt = self.challenge
        if attempt is None:
            return None
        return {
            "type": "redirect_to_url",
            "url": attempt.action_url,
            "return_url": attempt.return_url,
        }

    # ----------------------------------------------------------------- authorization

    def request_authorization(
        self,
        payment_method: str,
        now: datetime,
        request: tuple[str, str] | None = None,
        return_url: str | None = None,
    ) -> Attempt:
        """Start a new attempt; the event is the write-ahead record of the PSP call.

        `request` is the client's (Idempotency-Key, fingerprint), remembered for replays;
        `return_url` is where the PSP sends the buyer back after a 3-D Secure challenge.
        """
        check_payment_method(payment_method)
        self.check_can_start_attempt(now)
        number = len(self.attempts) + 1
        self._authorization_requested(
            attempt=number,
            payment_method=payment_method,
            psp_idempotency_key=psp_key(self.id, CallKind.AUTHORIZE, number),
            amount=self.amount,
            currency=self.currency,
            capture=self.auto_capture,
            at=now,
            request_key=request[0] if request else None,
            request_fingerprint=request[1] if request else None,
            return_url=return_url,
        )
        return self.attempts[-1]

    @event("AuthorizationRequested", topic="PaymentOrder.AuthorizationRequested")
    def _authorization_requested(
        self,
        attempt: int,
        payment_method: str,
        psp_idempotency_key: str,
        amount: int,
        currency: str,
        capture: bool,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
        return_url: str | None = None,  # stored since 3-D Secure; absent from older events
    ) -> None:
        self._remember(request_key, request_fingerprint)
        self.attempts.append(
            Attempt(
                kind=CallKind.AUTHORIZE,
                number=attempt,
                psp_key=psp_idempotency_key,
                amount=amount,
                requested_at=at,
                sent_at=at,
                payment_method=payment_method,
                return_url=return_url,
            )
        )
        self._move(S.PROCESSING)

    def resend(self, kind: CallKind, number: int, now: datetime) -> PspCall:
        """Send a call known not to have been processed again, with the same PSP key."""
        call = self.call(kind, number)
        if not call.in_flight or call.outcome_unknown:
            raise IllegalTransition("only a call known not to have been processed is resent")
        if call.next_action != Action.RESEND and call.failure_code != NOT_RECEIVED:
            raise IllegalTransition("no resend of this call is due")
        self._request_resent(kind=call.kind.value, number=number, try_number=call.tries + 1, at=now)
        return call

    @event("PSPRequestResent", topic="PaymentOrder.PSPRequestResent")
    def _request_resent(self, kind: str, number: int, try_number: int, at: datetime) -> None:
        call = self.call(kind, number)
        call.tries, call.sent_at = try_number, at
        call.schedule(None, None)
        call.note_failure(None, None)

    def record_psp_payment(self, kind: CallKind, number: int, psp_reference: str) -> None:
        """A two-step PSP created its payment for this call (no money moved yet): record
        its reference before anything confirms it, so an inquiry knows what to ask about."""
        call = self.call(kind, number)
        if not call.in_flight or call.psp_reference == psp_reference:
            return
        if call.psp_reference is not None:
            raise IllegalTransition("the call already has a payment at the PSP")
        self._psp_payment_created(kind=call.kind.value, number=number, psp_reference=psp_reference)

    @event("PSPPaymentCreated", topic="PaymentOrder.PSPPaymentCreated")
    def _psp_payment_created(self, kind: str, number: int, psp_reference: str) -> None:
        self.call(kind, number).psp_reference = psp_reference

    def _remember(self, request_key: str | None, fingerprint: str | None) -> None:
        if request_key and fingerprint:
            self.request_keys[request_key] = fingerprint

    def _move(self, target: OrderStatus) -> None:
        """Apply a status change; guards have already checked it, so this is an assertion."""
        if not can_move(self.status, target):  # pragma: no cover - guarded by commands
            raise IllegalTransition(f"a {self.status} order cannot become {target}")
        self.status = target

    # ----------------------------------------------------------------- PSP results

    def accepts_result(self, call: PspCall, result: PSPResult) -> bool:
        """A result applies to a call in flight, or reveals that a call given up succeeded."""
        return accepts(call, result, call.failed and self._late_success_fits(call, result))

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
        found = verdict(call, result, self.currency)
        if found == Verdict.PROCESSING:
            self._psp_processing(kind=kind.value, number=number, psp_reference=result.psp_reference)
        elif found == Verdict.ACTION:
            self._action_required(
                attempt=number, psp_reference=result.psp_reference, url=result.action_url or ""
            )
        elif found == Verdict.REFUSAL:
            self._record_refusal(call, result)
        elif found == Verdict.MISMATCH:
            self._record_mismatch(call, result)
        else:
            self._record_success(call, result)

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
            self._authorized(
                attempt=call.number,
                psp_reference=ref,
                amount=result.amount,
                authorization_expires_at=result.authorization_expires_at,
            )
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

    @event("PSPProcessing", topic="PaymentOrder.PSPProcessing")
    def _psp_processing(self, kind: str, number: int, psp_reference: str) -> None:
        call = self.call(kind, number)
        call.mark_in_flight(unknown=False)
        call.psp_processing, call.psp_reference = True, psp_reference
        call.schedule(None, None)

    @event("ActionRequired", topic="PaymentOrder.ActionRequired")
    def _action_required(self, attempt: int, psp_reference: str, url: str) -> None:
        """The PSP holds the payment until the buyer confirms with their bank at `url`."""
        a = self.attempt(attempt)
        a.status, a.psp_reference, a.action_url = AttemptStatus.REQUIRES_ACTION, psp_reference, url
        a.note_failure(None, None)
        self._settle(a, MOVES["action_required"])

    @event("Authorized", topic="PaymentOrder.Authorized")
    def _authorized(
        self,
        attempt: int,
        psp_reference: str,
        amount: int,
        authorization_expires_at: datetime | None = None,  # absent from older events
    ) -> None:
        a = self.attempt(attempt)
        a.status, a.psp_reference = AttemptStatus.AUTHORIZED, psp_reference
        a.authorization_expires_at = authorization_expires_at
        a.note_failure(None, None)
        self._settle(a, MOVES["authorized"])

    @event("Captured", topic="PaymentOrder.Captured")
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
        self._settle(settled, MOVES["captured"])

    @event("Declined", topic="PaymentOrder.Declined")
    def _declined(self, attempt: int, psp_reference: str, code: str, message: str) -> None:
        a = self.attempt(attempt)
        a.status, a.psp_reference = AttemptStatus.DECLINED, psp_reference
        a.note_failure(code, message)
        self._settle(a, MOVES["declined"])

    @event("Voided", topic="PaymentOrder.Voided")
    def _voided(self, operation: int, attempt: int) -> None:
        op = self.operation(operation)
        op.mark_succeeded(None)
        self.attempt(attempt).status = AttemptStatus.VOIDED
        self._settle(op, MOVES["voided_by_merchant" if op.purpose == "merchant" else "none"])

    @event("Refunded", topic="PaymentOrder.Refunded")
    def _refunded(
        self, operation: int, psp_reference: str, amount: int, allocation: list[dict[str, Any]]
    ) -> None:
        self.operation(operation).mark_succeeded(psp_reference)
        self.refunded = add_shares(self.refunded, shares_from(allocation))
        moves = refund_moves(self.refunded_amount >= self.captured_amount)
        self._settle(self.operation(operation), moves)

    def _settle(self, call: PspCall, moves: dict[OrderStatus, OrderStatus]) -> None:
        """A call got its outcome: stop scheduling it, end its review, move the order."""
        call.schedule(None, None)
        call.psp_processing = False
        self.status, self.review = settle(self.status, self.review, call, moves)

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

    @event("PSPTimedOut", topic="PaymentOrder.PSPTimedOut")
    def _psp_timed_out(self, kind: str, number: int, elapsed_ms: int) -> None:
        call = self.call(kind, number)
        call.mark_in_flight(unknown=True)
        call.note_failure("psp_timeout", f"no answer from the PSP within {elapsed_ms} ms")

    @event("PSPErrored", topic="PaymentOrder.PSPErrored")
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

    @event("OutcomeInquired", topic="PaymentOrder.OutcomeInquired")
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

    @event("RetryScheduled", topic="PaymentOrder.RetryScheduled")
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

    @event("CallFailed", topic="PaymentOrder.CallFailed")
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
        self._settle(call, MOVES["failed_ending_order" if ends_order else "none"])

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

    @event("SentToManualReview", topic="PaymentOrder.SentToManualReview")
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

    # ----------------------------------------------------------------- follow-up operations

    def request_capture(
        self,
        amount: int | None,
        now: datetime,
        purpose: Purpose = Purpose.MERCHANT,
        request: tuple[str, str] | None = None,
    ) -> Operation:
        """Capture all or part of the authorization (write-ahead record of the PSP call)."""
        lapsed = [a for a in self.attempts if a.failure_code == "authorization_expired"]
        if self.status == S.EXPIRED and lapsed and lapsed[0].authorization_expires_at:
            raise AuthorizationExpired(
                f"the PSP released the authorization at "
                f"{lapsed[0].authorization_expires_at.isoformat()}: nothing is left to capture"
            )
        if self.status != S.AUTHORIZED:
            raise IllegalTransition(f"a {self.status} order has nothing to capture")
        self.check_nothing_in_flight()
        attempt = self._attempt_in(AttemptStatus.AUTHORIZED)
        lapses = attempt.authorization_expires_at
        if purpose == Purpose.MERCHANT and lapses is not None and now >= lapses:
            raise AuthorizationExpired(
                f"the PSP released the authorization at {lapses.isoformat()}: nothing is left "
                "to capture; the order is canceled and the buyer asked to pay again"
            )
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
        """Cancel: void an authorization, or close an order that never got one (a pending
        challenge's payment is then canceled at the PSP by compensation)."""
        self.check_nothing_in_flight(but_challenges=True)
        if self.status == S.AUTHORIZED:
            attempt = self._attempt_in(AttemptStatus.AUTHORIZED)
            return self._start(
                CallKind.VOID, attempt.number, attempt.amount, [], Purpose.MERCHANT, now, request
            )
        if self.status not in (S.REQUIRES_PAYMENT_METHOD, S.PROCESSING, S.REQUIRES_ACTION):
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
        available = self.refundable_amount
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
        if a.status not in (AttemptStatus.AUTHORIZED, AttemptStatus.REQUIRES_ACTION):
            raise IllegalTransition("only an authorized or challenged attempt can be voided")
        if self.status not in CLOSED_TO_AUTHORIZATIONS:
            raise IllegalTransition(f"a {self.status} order may still use its authorization")
        if any(
            o.kind == CallKind.VOID and o.attempt == attempt and o.in_flight
            for o in self.operations
        ):
            raise IllegalTransition("a void of this attempt is already in flight")
        return self._start(CallKind.VOID, attempt, a.amount, [], Purpose.COMPENSATION, now)

    class OperationRequested(Aggregate.Event):
        """Write-ahead record of a capture, void or refund (the subclasses name which)."""

        TOPIC = "PaymentOrder.OperationRequested"  # never stored: only its subclasses are
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
        TOPIC = "PaymentOrder.CaptureRequested"
        kind = CallKind.CAPTURE

    class VoidRequested(OperationRequested):
        TOPIC = "PaymentOrder.VoidRequested"
        kind = CallKind.VOID

    class RefundRequested(OperationRequested):
        TOPIC = "PaymentOrder.RefundRequested"
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

    def _attempt_in(self, status: AttemptStatus) -> Attempt:
        for attempt in reversed(self.attempts):
            if attempt.status == status:
                return attempt
        raise IllegalTransition(f"no {status} attempt")

    @event("Canceled", topic="PaymentOrder.Canceled")
    def _canceled(
        self, at: datetime, request_key: str | None, request_fingerprint: str | None
    ) -> None:
        self._remember(request_key, request_fingerprint)
        self._move(S.CANCELED)
        self._drop_challenge()

    def _drop_challenge(self) -> None:
        """The order closed: stop asking about its challenge; compensation cancels it."""
        if (attempt := self.challenge) is not None:
            attempt.schedule(None, None)

    # ----------------------------------------------------------------- session deadline

    def expire(self, now: datetime) -> None:
        """Close a checkout whose session ended without success; nothing may be in flight
        but a challenge the buyer abandoned (its payment is then canceled by compensation)."""
        if now < self.expires_at:
            raise IllegalTransition("the checkout session has not ended yet")
        if self.status not in (S.PROCESSING, S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_ACTION):
            raise IllegalTransition(f"a {self.status} order does not expire")
        self.check_nothing_in_flight(but_challenges=True)
        if (attempt := self.challenge) is not None:
            self._challenge_abandoned(attempt=attempt.number, at=now)
        self._expired(at=now)

    def end_session_if_over(self, now: datetime) -> None:
        """Before a bank's answer to a challenge is recorded: if the session is over, the
        order expires first, so a payment completed too late is compensated, never kept."""
        if self.status == S.REQUIRES_ACTION and now >= self.expires_at:
            self.expire(now)

    @event("ChallengeAbandoned", topic="PaymentOrder.ChallengeAbandoned")
    def _challenge_abandoned(self, attempt: int, at: datetime) -> None:
        """The session ended while the buyer's bank still waited for them."""
        self.attempt(attempt).note_failure(
            "challenge_abandoned", "the buyer did not confirm with their bank in time"
        )

    @event("Expired", topic="PaymentOrder.Expired")
    def _expired(self, at: datetime) -> None:
        self._move(S.EXPIRED)
        self._drop_challenge()

    # ----------------------------------------------------------------- authorization holds

    @property
    def hold(self) -> Attempt | None:
        """The authorized attempt whose hold lapses at a known time, while it may be
        captured."""
        if self.status != S.AUTHORIZED or self.in_flight():
            return None
        attempt = next((a for a in self.attempts if a.status == AttemptStatus.AUTHORIZED), None)
        return attempt if attempt and attempt.authorization_expires_at else None

    def lapse_hold(self, now: datetime) -> None:
        """The PSP's hold ended uncaptured: record it (the order expires; compensation
        releases the authorization at the PSP, so nothing is left hanging)."""
        attempt = self.hold
        if attempt is None or attempt.authorization_expires_at is None:
            raise IllegalTransition(f"a {self.status} order holds no lapsing authorization")
        if now < attempt.authorization_expires_at:
            raise IllegalTransition("the authorization has not lapsed yet")
        self._hold_lapsed(attempt=attempt.number, at=now)

    @event("HoldLapsed", topic="PaymentOrder.HoldLapsed")
    def _hold_lapsed(self, attempt: int, at: datetime) -> None:
        self.attempt(attempt).note_failure(
            "authorization_expired", "the PSP's hold lapsed before the order was captured"
        )
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

    @event("ManuallyResolved", topic="PaymentOrder.ManuallyResolved")
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

    @event("WebhookApplied", topic="PaymentOrder.WebhookApplied")
    def _webhook_applied(
        self, event_id: str, event_type: str, kind: str, number: int, psp_reference: str
    ) -> None:
        self.webhook_ids.add(event_id)

    # ----------------------------------------------------------------- disputes

    def apply_dispute(
        self, event_id: str, attempt: int, notice: DisputeNotice, liability: Liability
    ) -> bool:
        """Record what the PSP says about a dispute of this order's payment, once: opened,
        then won or lost (a `closed` that overtook its `created` records both). The order's
        status never changes; the money moves in the ledger."""
        if event_id in self.webhook_ids:
            return False
        if self.attempt(attempt).status != AttemptStatus.CAPTURED:
            # perhaps not yet: our record of the capture may still be on its way (retryable)
            raise IllegalTransition("the payment is not captured here (yet)")
        if notice.currency != self.currency:
            raise InvalidInput("the dispute is not in the order's currency", field="currency")
        changed = False
        if notice.dispute_id not in self.disputes:
            left = self.captured_amount - self.refunded_amount - self.disputed_amount
            if not 1 <= notice.amount <= left:
                message = f"must be between 1 and the {left} captured, not refunded nor disputed"
                raise InvalidInput(message, field="amount")
            self._dispute_opened(
                event_id=event_id,
                dispute_id=notice.dispute_id,
                attempt=attempt,
                amount=notice.amount,
                fee=notice.fee,
                reason=notice.reason,
                evidence_due_by=notice.evidence_due_by,
            )
            changed = True
        dispute = self.disputes[notice.dispute_id]
        if notice.status in DISPUTE_OUTCOMES and dispute.open:
            lost_by_sellers = notice.status == DisputeStatus.LOST and liability == Liability.SELLER
            allocation = shares_to(prorate(self.splits, dispute.amount)) if lost_by_sellers else []
            self._dispute_closed(
                event_id=event_id,
                dispute_id=dispute.id,
                amount=dispute.amount,
                outcome=notice.status.value,
                liability=liability.value,
                allocation=allocation,
            )
            changed = True
        return changed

    @event("DisputeOpened", topic="PaymentOrder.DisputeOpened")
    def _dispute_opened(
        self,
        event_id: str,
        dispute_id: str,
        attempt: int,
        amount: int,
        fee: int,
        reason: str,
        evidence_due_by: datetime | None,
    ) -> None:
        self.webhook_ids.add(event_id)
        self.disputes[dispute_id] = Dispute(
            dispute_id, attempt, amount, fee, reason, evidence_due_by
        )

    @event("DisputeClosed", topic="PaymentOrder.DisputeClosed")
    def _dispute_closed(
        self,
        event_id: str,
        dispute_id: str,
        amount: int,
        outcome: str,
        liability: str,
        allocation: list[dict[str, Any]],
    ) -> None:
        self.webhook_ids.add(event_id)
        self.disputes[dispute_id].status = DisputeStatus(outcome)


event_names.register_aliases(PaymentOrder)
