"""What the simulated PSP really did: payments, idempotency records and the events to notify.

Pure, synchronous bookkeeping; the HTTP layer (psp/simulator.py) adds faults and webhooks.
Every request is idempotent by its key: the same key with the same body gets the stored
response (with no second charge), with another body a 409.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from psp.settlement import SettlementBooks, charge_fee

DECLINES = {
    "pm_card_declined": ("card_declined", "The card was declined."),
    "pm_card_insufficient_funds": ("insufficient_funds", "The card has insufficient funds."),
}
PROCESSING_TOKEN = "pm_card_processing"  # noqa: S105 - a test card token, not a secret
CHALLENGE_TOKEN = "pm_card_threeDSecure2Required"  # noqa: S105 - Stripe's test token name
AUTHENTICATION_FAILED = ("authentication_failed", "The buyer did not confirm with their bank.")


class SimError(Exception):
    """A request the PSP refuses with a 4xx."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class SimPayment:
    id: str
    idempotency_key: str
    reference: str
    amount: int
    currency: str
    payment_method: str
    capture: bool
    auth_status: str
    status: str
    decline_code: str | None = None
    decline_message: str | None = None
    captured_amount: int = 0
    refunded_amount: int = 0
    refunds: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    return_url: str | None = None
    hold_lifetime_s: float = 7 * 24 * 3600
    authorized_until: float | None = None
    """When an authorization lapses uncaptured (the PSP then releases the hold)."""
    action_url: str | None = None
    """The challenge page while the payment waits for the buyer (`requires_action`)."""


DISPUTE_FEE = 1500
"""What the simulated PSP charges the merchant per dispute, in minor units."""
EVIDENCE_WINDOW_S = 7 * 24 * 3600


@dataclass
class SimDispute:
    """A chargeback: the buyer's bank takes `amount` back until the merchant wins."""

    id: str
    payment_id: str
    amount: int
    reason: str
    fee: int = DISPUTE_FEE
    status: str = "needs_response"
    created_at: float = field(default_factory=time.time)
    closed_at: float | None = None

    @property
    def evidence_due_by(self) -> int:
        return int(self.created_at + EVIDENCE_WINDOW_S)


@dataclass
class Record:
    """One processed request: replays of its key answer with `body`."""

    operation: str
    fingerprint: str
    payment_id: str
    body: dict[str, Any]


@dataclass
class Notice:
    """A webhook the PSP owes the merchant."""

    type: str
    payment_id: str
    idempotency_key: str
    operation: str
    body: dict[str, Any]


@dataclass
class Outcome:
    body: dict[str, Any]
    notices: list[Notice]
    processing: str | None = None
    """The id of a payment that answered 'processing' and will be resolved later."""


class SimulatedPSP:
    """The simulator's books."""

    def __init__(self) -> None:
        self.payments: dict[str, SimPayment] = {}
        self.records: dict[str, Record] = {}
        self.disputes: dict[str, SimDispute] = {}
        self.settlement = SettlementBooks()
        self.fees: Callable[[], tuple[int, int]] = lambda: (0, 0)
        """(basis points, fixed) of the fee on a charge, as the controls say now."""

    def authorize(
        self,
        key: str,
        request: dict[str, Any],
        *,
        mismatch: bool = False,
        challenge_base: str = "",
        hold_lifetime_s: float = 7 * 24 * 3600,
    ) -> Outcome:
        """Create a payment for the request (once per key); a challenged card waits for the
        buyer at `challenge_base`/challenge/<payment id>."""
        replay = self._replay(key, "authorize", request)
        if replay:
            return replay
        amount = request["amount"] + (1 if mismatch else 0)
        payment = SimPayment(
            id=_new_id("pay"),
            idempotency_key=key,
            reference=request["reference"],
            amount=amount,
            currency=request["currency"],
            payment_method=request["payment_method"],
            capture=request["capture"],
            auth_status="",
            status="",
            return_url=request.get("return_url"),
            hold_lifetime_s=hold_lifetime_s,
        )
        self._decide(payment)
        if payment.status == "captured":
            self._charged(payment, payment.amount)
        if payment.status == "requires_action":
            payment.action_url = f"{challenge_base}/challenge/{payment.id}"
        self.payments[payment.id] = payment
        return self._record(
            key, "authorize", request, payment, _view(payment, "authorize", amount, key)
        )

    def capture(self, key: str, payment_id: str, request: dict[str, Any]) -> Outcome:
        """Capture an authorized payment, in full or in part (once)."""
        replay = self._replay(key, "capture", request | {"payment": payment_id})
        if replay:
            return replay
        payment = self._payment(payment_id, allowed=("authorized",))
        if self._lapsed(payment):
            raise SimError(409, "authorization_expired", "the authorization lapsed uncaptured")
        amount = request.get("amount") or payment.amount
        if not 1 <= amount <= payment.amount:
            raise SimError(400, "invalid_amount", "capture amount out of range")
        payment.status, payment.captured_amount = "captured", amount
        self._charged(payment, amount)
        view = _view(payment, "capture", amount, key)
        return self._record(key, "capture", request | {"payment": payment_id}, payment, view)

    def void(self, key: str, payment_id: str, request: dict[str, Any]) -> Outcome:
        """Release an authorization."""
        replay = self._replay(key, "void", request | {"payment": payment_id})
        if replay:
            return replay
        lapsed = self.payments.get(payment_id)
        if lapsed is not None and self._lapsed(lapsed):  # released already: nothing to undo
            view = _view(lapsed, "void", lapsed.amount, key)
            return self._record(key, "void", request | {"payment": payment_id}, lapsed, view)
        payment = self._payment(payment_id, allowed=("authorized", "requires_action"))
        if payment.status == "requires_action":  # a challenge canceled: it ends unpaid
            self._settle(payment, "voided")
        payment.status = "voided"
        view = _view(payment, "void", payment.amount, key)
        return self._record(key, "void", request | {"payment": payment_id}, payment, view)

    def refund(self, key: str, payment_id: str, request: dict[str, Any]) -> Outcome:
        """Refund part of what was captured."""
        replay = self._replay(key, "refund", request | {"payment": payment_id})
        if replay:
            return replay
        payment = self._payment(payment_id, allowed=("captured", "partially_refunded"))
        amount = request["amount"]
        if not 1 <= amount <= payment.captured_amount - payment.refunded_amount:
            raise SimError(400, "invalid_amount", "refund amount out of range")
        payment.refunded_amount += amount
        full = payment.refunded_amount == payment.captured_amount
        payment.status = "refunded" if full else "partially_refunded"
        refund = {"id": _new_id("re"), "amount": amount, "idempotency_key": key}
        payment.refunds.append(refund)
        self._moved(payment, "refund", refund["id"], -amount)
        view = _view(payment, "refund", amount, key) | {"id": refund["id"], "payment": payment.id}
        view["status"] = "refunded"
        return self._record(key, "refund", request | {"payment": payment_id}, payment, view)

    def inquire(self, key: str) -> dict[str, Any] | None:
        """What became of the request sent with `key`; None if it never arrived."""
        record = self.records.get(key)
        return None if record is None else record.body

    def resolve_processing(self, payment_id: str) -> list[Notice]:
        """The bank answered: a processing payment becomes authorized (or captured)."""
        payment = self.payments[payment_id]
        if payment.auth_status != "processing":
            return []
        return self._settle(payment, "captured" if payment.capture else "authorized")

    def answer_challenge(self, payment_id: str, *, completed: bool) -> list[Notice]:
        """The buyer confirmed with their bank (or failed to): the payment is authorized or
        captured, or declined."""
        payment = self._payment(payment_id, allowed=("requires_action",))
        if completed:
            return self._settle(payment, "captured" if payment.capture else "authorized")
        payment.decline_code, payment.decline_message = AUTHENTICATION_FAILED
        return self._settle(payment, "declined")

    def _charged(self, payment: SimPayment, amount: int) -> None:
        """Captured money: a charge row, less the PSP's fee, in a settlement batch."""
        bps, fixed = self.fees()
        fee = charge_fee(amount, bps, fixed)
        self._moved(payment, "charge", payment.id, amount, fee)

    def _moved(
        self, payment: SimPayment, type_: str, reference: str, gross: int, fee: int = 0
    ) -> None:
        self.settlement.record(
            time.time(), type_, reference, payment.reference, payment.currency, gross, fee
        )

    def _lapsed(self, payment: SimPayment) -> bool:
        """An authorization past its hold is released: the payment is voided."""
        until = payment.authorized_until
        if payment.status == "authorized" and until is not None and time.time() >= until:
            payment.status = "voided"
        return payment.status == "voided" and until is not None and time.time() >= until

    def _settle(self, payment: SimPayment, final: str) -> list[Notice]:
        """A payment left waiting ends as `final`; its request's record answers inquiries
        with that from now on."""
        _take(payment, final)
        if final == "captured":
            self._charged(payment, payment.amount)
        key = payment.idempotency_key
        record = self.records[key]
        record.body = _view(payment, "authorize", payment.amount, key)
        return [Notice(f"payment.{final}", payment.id, key, "authorize", record.body)]

    def open_dispute(self, payment_id: str, amount: int | None, reason: str) -> list[Notice]:
        """The buyer's bank disputes a captured payment (all of what is left, by default)."""
        payment = self._payment(payment_id, allowed=("captured", "partially_refunded"))
        left = payment.captured_amount - payment.refunded_amount
        amount = left if amount is None else amount
        if not 1 <= amount <= left:
            raise SimError(400, "invalid_amount", "a dispute is of at most what is captured")
        dispute = SimDispute(_new_id("dp"), payment.id, amount, reason)
        self.disputes[dispute.id] = dispute
        self._moved(payment, "dispute", dispute.id, -amount, -dispute.fee)
        return [self._dispute_notice(dispute, "dispute.created")]

    def resolve_dispute(self, dispute_id: str, outcome: str) -> list[Notice]:
        """The bank decides: the merchant won (the money comes back) or lost."""
        dispute = self.disputes.get(dispute_id)
        if dispute is None:
            raise SimError(404, "no_such_dispute", "no such dispute")
        if dispute.status in ("won", "lost"):
            raise SimError(409, "invalid_state", f"the dispute is {dispute.status}")
        dispute.status, dispute.closed_at = outcome, time.time()
        if outcome == "won":
            payment = self.payments[dispute.payment_id]
            self._moved(payment, "dispute_reversal", dispute.id, dispute.amount)
        return [self._dispute_notice(dispute, "dispute.closed")]

    def _dispute_notice(self, dispute: SimDispute, kind: str) -> Notice:
        payment = self.payments[dispute.payment_id]
        body = dispute_view(dispute, payment)
        return Notice(kind, payment.id, payment.idempotency_key, "dispute", body)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every payment as the PSP sees it, for double-charge checks."""
        return [asdict(p) for p in self.payments.values()]

    def _decide(self, payment: SimPayment) -> None:
        token = payment.payment_method
        if token in DECLINES:
            payment.auth_status = payment.status = "declined"
            payment.decline_code, payment.decline_message = DECLINES[token]
        elif token == PROCESSING_TOKEN:
            payment.auth_status = payment.status = "processing"
        elif token == CHALLENGE_TOKEN:
            payment.auth_status = payment.status = "requires_action"
        elif token.startswith("pm_card_"):
            _take(payment, "captured" if payment.capture else "authorized")
        else:
            payment.auth_status = payment.status = "declined"
            payment.decline_code = "invalid_payment_method"
            payment.decline_message = "The payment method is not known to the PSP."

    def _payment(self, payment_id: str, allowed: tuple[str, ...]) -> SimPayment:
        payment = self.payments.get(payment_id)
        if payment is None:
            raise SimError(404, "no_such_payment", "no such payment")
        if payment.status not in allowed:
            raise SimError(409, "invalid_state", f"the payment is {payment.status}")
        return payment

    def _replay(self, key: str, operation: str, request: dict[str, Any]) -> Outcome | None:
        record = self.records.get(key)
        if record is None:
            return None
        if record.operation != operation or record.fingerprint != _fingerprint(request):
            raise SimError(409, "idempotency_key_reused", "key reused with other parameters")
        return Outcome(record.body, [])

    def _record(
        self,
        key: str,
        operation: str,
        request: dict[str, Any],
        payment: SimPayment,
        body: dict[str, Any],
    ) -> Outcome:
        self.records[key] = Record(operation, _fingerprint(request), payment.id, body)
        if body["status"] == "processing":
            return Outcome(body, [], processing=payment.id)
        if body["status"] == "requires_action":
            return Outcome(body, [])  # the buyer's answer is notified, not the question
        return Outcome(
            body, [Notice(f"payment.{body['status']}", payment.id, key, operation, body)]
        )


def _view(payment: SimPayment, operation: str, amount: int, key: str) -> dict[str, Any]:
    status = payment.auth_status if operation == "authorize" else payment.status
    return {
        "id": payment.id,
        "status": status,
        "amount": amount,
        "currency": payment.currency,
        "reference": payment.reference,
        "operation": operation,
        "idempotency_key": key,
        "decline_code": payment.decline_code,
        "decline_message": payment.decline_message,
        "next_action": _next_action(payment) if status == "requires_action" else None,
        "authorization_expires_at": _hold_end(payment) if status == "authorized" else None,
    }


def dispute_view(dispute: SimDispute, payment: SimPayment) -> dict[str, Any]:
    return {
        "id": dispute.id,
        "object": "dispute",
        "payment": payment.id,
        "idempotency_key": payment.idempotency_key,
        "status": dispute.status,
        "amount": dispute.amount,
        "currency": payment.currency,
        "fee": dispute.fee,
        "reason": dispute.reason,
        "evidence_due_by": dispute.evidence_due_by,
    }


def _take(payment: SimPayment, final: str) -> None:
    """The payment is now `final`; an authorization holds the money for its lifetime."""
    if final == "authorized":
        payment.authorized_until = time.time() + payment.hold_lifetime_s
    payment.auth_status = payment.status = final
    payment.captured_amount = payment.amount if final == "captured" else 0


def _hold_end(payment: SimPayment) -> int | None:
    until = payment.authorized_until
    return None if until is None else int(until)


def _next_action(payment: SimPayment) -> dict[str, Any]:
    return {"type": "redirect_to_url", "url": payment.action_url, "return_url": payment.return_url}


def _fingerprint(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"
