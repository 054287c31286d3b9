"""The state of each PSP call an order made: authorization attempts and follow-up operations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.cart import SellerShare
from domain.statuses import AttemptStatus, OperationStatus

_PENDING, _UNKNOWN, _FAILED = "pending", "unknown", "failed"
_REQUIRES_ACTION = "requires_action"
NOT_RECEIVED = "not_received"
"""Failure code of a call an inquiry found the PSP never received: safe to send again."""


class CallKind(StrEnum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"


class Action(StrEnum):
    """What the recovery worker does next for a call in flight."""

    RESEND = "resend"
    INQUIRE = "inquire"


class Purpose(StrEnum):
    """Why a follow-up operation was started."""

    MERCHANT = "merchant"
    COMPENSATION = "compensation"
    AUTO_CAPTURE = "auto_capture"


@dataclass
class PspCall:
    """Fields every call to the PSP shares; `in_flight` until its outcome is recorded."""

    kind: CallKind
    number: int
    psp_key: str
    amount: int
    requested_at: datetime
    sent_at: datetime | None = None
    tries: int = 1
    inquiries: int = 0
    retries: int = 0
    next_action: Action | None = None
    due_at: datetime | None = None
    psp_reference: str | None = None
    psp_processing: bool = False
    failure_code: str | None = None
    failure_message: str | None = None
    given_up_at: datetime | None = None
    """When the worker gave the call up as not processed (reconciliation asks once more)."""
    reconciled: bool = False

    status: AttemptStatus | OperationStatus = AttemptStatus.PENDING
    """Each subclass narrows it to its own status enum; `pending`, `unknown` and `failed`
    mean the same in both, so the members below are shared."""

    @property
    def in_flight(self) -> bool:
        """True until the call has a final recorded outcome (a challenge the buyer has not
        answered yet is no outcome)."""
        return self.status in (_PENDING, _UNKNOWN, _REQUIRES_ACTION)

    @property
    def awaiting_buyer(self) -> bool:
        """An authorization the PSP holds until the buyer confirms with their bank."""
        return self.status == _REQUIRES_ACTION

    @property
    def outcome_unknown(self) -> bool:
        """True when the PSP may or may not have processed the call."""
        return self.status == _UNKNOWN

    @property
    def failed(self) -> bool:
        """True once the call was given up, believed not processed."""
        return self.status == _FAILED

    def mark_in_flight(self, *, unknown: bool) -> None:
        """Pending (known not processed, or accepted and processing) or unknown."""
        self.status = type(self.status)(_UNKNOWN if unknown else _PENDING)

    def mark_failed(self, code: str, message: str) -> None:
        self.status = type(self.status)(_FAILED)
        self.note_failure(code, message)
        self.schedule(None, None)

    @property
    def awaits_reconciliation(self) -> bool:
        """Given up by the worker, and not yet asked about once more."""
        return self.failed and self.given_up_at is not None and not self.reconciled

    @property
    def awaiting_response(self) -> bool:
        """Sent, and nothing recorded since: a request is (or was, if its process died) live."""
        return (
            self.in_flight
            and not self.outcome_unknown
            and not self.psp_processing
            and not self.awaiting_buyer
            and (self.next_action is None)
        )

    def schedule(self, action: Action | None, due_at: datetime | None) -> None:
        self.next_action, self.due_at = action, due_at

    def note_failure(self, code: str | None, message: str | None) -> None:
        self.failure_code, self.failure_message = code, message


@dataclass
class Attempt(PspCall):
    """One authorization transaction with the PSP, with one payment method."""

    payment_method: str = ""
    status: AttemptStatus = AttemptStatus.PENDING
    return_url: str | None = None
    """Where the PSP sends the buyer back after a challenge."""
    action_url: str | None = None
    """The challenge page while the PSP waits for the buyer (status `requires_action`)."""
    authorization_expires_at: datetime | None = None
    """When the PSP releases an authorization that was not captured."""


@dataclass
class Operation(PspCall):
    """A capture, void or refund of a successful attempt's PSP payment."""

    attempt: int = 0
    purpose: Purpose = Purpose.MERCHANT
    allocation: tuple[SellerShare, ...] = ()
    status: OperationStatus = OperationStatus.PENDING

    def mark_succeeded(self, psp_reference: str | None) -> None:
        self.status = OperationStatus.SUCCEEDED
        self.psp_reference = psp_reference or self.psp_reference
        self.note_failure(None, None)
        self.schedule(None, None)
