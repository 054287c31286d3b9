"""The first layer of the PaymentOrder aggregate: placement, state, guards, new attempts.

Commands are undecorated methods: they check guards (raising DomainError before anything
changes), read clocks and derive ids, then call a private @event method whose body only
applies the event. Replaying the events rebuilds exactly the same state. Event topics name
the layer that defines them, so an event must not move between layers once recorded.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, Self
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.calls import NOT_RECEIVED, Action, Attempt, CallKind, Operation, PspCall
from domain.cart import (
    Checkout,
    LineItem,
    SellerShare,
    add_shares,
    check_payment_method,
    shares_from,
    shares_to,
    split,
    sub_shares,
)
from domain.errors import IdempotencyKeyReused, IllegalTransition, InvalidInput
from domain.ids import order_id_for, psp_key
from domain.statuses import OrderStatus, can_move

S = OrderStatus
MAX_ATTEMPTS_PER_ORDER = 10
"""New payment methods a buyer may try on one order (a brake on card testing)."""


class OrderBase(Aggregate):
    """A buyer's checkout of one cart: the money owed to each seller and every PSP call made."""

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

    @event("Placed")
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

    def check_nothing_in_flight(self) -> None:
        """Most commands wait until every PSP call has a recorded outcome."""
        if self.in_flight():
            raise IllegalTransition("a PSP call for this order is still in flight")

    # ----------------------------------------------------------------- authorization

    def request_authorization(
        self, payment_method: str, now: datetime, request: tuple[str, str] | None = None
    ) -> Attempt:
        """Start a new attempt; the event is the write-ahead record of the PSP call.

        `request` is the client's (Idempotency-Key, fingerprint), remembered for replays.
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
        )
        return self.attempts[-1]

    @event("AuthorizationRequested")
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

    @event("PSPRequestResent")
    def _request_resent(self, kind: str, number: int, try_number: int, at: datetime) -> None:
        call = self.call(kind, number)
        call.tries, call.sent_at = try_number, at
        call.schedule(None, None)
        call.note_failure(None, None)

    def _remember(self, request_key: str | None, fingerprint: str | None) -> None:
        if request_key and fingerprint:
            self.request_keys[request_key] = fingerprint

    def _move(self, target: OrderStatus) -> None:
        """Apply a status change; guards have already checked it, so this is an assertion."""
        if not can_move(self.status, target):  # pragma: no cover - guarded by commands
            raise IllegalTransition(f"a {self.status} order cannot become {target}")
        self.status = target
