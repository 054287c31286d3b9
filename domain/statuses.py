"""Order, attempt and operation statuses, and which order transitions are legal."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    PROCESSING = "processing"
    REQUIRES_ACTION = "requires_action"
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NEEDS_REVIEW = "needs_review"
    EXPIRED = "expired"
    CANCELED = "canceled"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


class AttemptStatus(StrEnum):
    PENDING = "pending"
    UNKNOWN = "unknown"
    REQUIRES_ACTION = "requires_action"
    """The PSP waits for the buyer to confirm with their bank (a 3-D Secure challenge)."""
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    DECLINED = "declined"
    FAILED = "failed"
    VOIDED = "voided"


class OperationStatus(StrEnum):
    """Status of a capture, void or refund sent to the PSP."""

    PENDING = "pending"
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


S = OrderStatus
TERMINAL: frozenset[OrderStatus] = frozenset({S.FAILED, S.EXPIRED, S.CANCELED, S.REFUNDED})

_REFUNDABLE = {S.PARTIALLY_REFUNDED, S.REFUNDED, S.NEEDS_REVIEW}
_ANSWERED = frozenset(
    {
        S.REQUIRES_PAYMENT_METHOD,
        S.AUTHORIZED,
        S.SUCCEEDED,
        S.FAILED,
        S.NEEDS_REVIEW,
        S.EXPIRED,
        S.CANCELED,
    }
)
"""Where an order waiting for the PSP (or for the buyer's bank) may go next."""
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PROCESSING: _ANSWERED | {S.REQUIRES_ACTION},
    S.REQUIRES_ACTION: _ANSWERED,
    S.REQUIRES_PAYMENT_METHOD: frozenset({S.PROCESSING, S.EXPIRED, S.CANCELED}),
    S.AUTHORIZED: frozenset({S.SUCCEEDED, S.CANCELED, S.NEEDS_REVIEW, S.EXPIRED}),
    S.SUCCEEDED: frozenset(_REFUNDABLE),
    S.PARTIALLY_REFUNDED: frozenset(_REFUNDABLE),
    S.NEEDS_REVIEW: frozenset(set(S) - {S.NEEDS_REVIEW}),
    **{terminal: frozenset() for terminal in TERMINAL},
}


def can_move(current: OrderStatus, target: OrderStatus) -> bool:
    """Staying put is always allowed; otherwise the table decides."""
    return current == target or target in TRANSITIONS[current]
