"""Pure decisions about PSP answers and the status moves they make, tested without the aggregate.

`verdict` reads a PSP result for a call (what kind of outcome it is); `accepts` says whether
the result may be recorded at all; `MOVES` is the table of order status moves each outcome
makes; `settle` applies a move to an order's status while a manual review may be open.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from domain.calls import CallKind, PspCall
from domain.psp import PSPResult, PSPStatus
from domain.statuses import TERMINAL, OrderStatus

S = OrderStatus

SUCCESS: dict[CallKind, frozenset[PSPStatus]] = {
    CallKind.AUTHORIZE: frozenset({PSPStatus.AUTHORIZED, PSPStatus.CAPTURED}),
    CallKind.CAPTURE: frozenset({PSPStatus.CAPTURED}),
    CallKind.VOID: frozenset({PSPStatus.VOIDED}),
    CallKind.REFUND: frozenset({PSPStatus.REFUNDED}),
}
"""The PSP statuses that mean a call of each kind succeeded."""

RESOLUTIONS: dict[CallKind, dict[str, bool]] = {
    CallKind.AUTHORIZE: {"authorized": True, "captured": True, "not_charged": False},
    CallKind.CAPTURE: {"captured": True, "not_captured": False},
    CallKind.VOID: {"voided": True, "not_voided": False},
    CallKind.REFUND: {"refunded": True, "not_refunded": False},
}
"""The outcomes an operator may record for a reviewed call, and whether each is a success."""

CLOSED_TO_AUTHORIZATIONS = TERMINAL | {S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED}
"""Order statuses in which an authorized attempt will never be captured: it is voided."""


class Verdict(StrEnum):
    """What a PSP result means for the call it answers."""

    PROCESSING = "processing"
    ACTION = "action"
    """The buyer must confirm with their bank first (3-D Secure)."""
    REFUSAL = "refusal"
    MISMATCH = "mismatch"
    SUCCESS = "success"


MOVES: dict[str, dict[OrderStatus, OrderStatus]] = {
    "action_required": {S.PROCESSING: S.REQUIRES_ACTION},
    "authorized": {S.PROCESSING: S.AUTHORIZED, S.REQUIRES_ACTION: S.AUTHORIZED},
    "captured": {
        S.PROCESSING: S.SUCCEEDED,
        S.REQUIRES_ACTION: S.SUCCEEDED,
        S.AUTHORIZED: S.SUCCEEDED,
    },
    "declined": {
        S.PROCESSING: S.REQUIRES_PAYMENT_METHOD,
        S.REQUIRES_ACTION: S.REQUIRES_PAYMENT_METHOD,
    },
    "voided_by_merchant": {S.AUTHORIZED: S.CANCELED},
    "failed_ending_order": {S.PROCESSING: S.FAILED, S.REQUIRES_ACTION: S.FAILED},
    "none": {},
}
"""The order status moves each recorded outcome makes (a status not listed stays)."""


def refund_moves(fully_refunded: bool) -> dict[OrderStatus, OrderStatus]:
    """A refund leaves the order refunded, or partially refunded."""
    done = S.REFUNDED if fully_refunded else S.PARTIALLY_REFUNDED
    return {S.SUCCEEDED: done, S.PARTIALLY_REFUNDED: done}


def verdict(call: PspCall, result: PSPResult, currency: str) -> Verdict:
    """Read a PSP result for `call`: still processing, refused, a different amount, or done."""
    if result.status == PSPStatus.PROCESSING:
        return Verdict.PROCESSING
    if result.status == PSPStatus.REQUIRES_ACTION and call.kind == CallKind.AUTHORIZE:
        return Verdict.ACTION
    if result.status not in SUCCESS[call.kind]:
        return Verdict.REFUSAL
    if result.amount != call.amount or result.currency != currency:
        return Verdict.MISMATCH
    return Verdict.SUCCESS


def accepts(call: PspCall, result: PSPResult, late_success_fits: bool) -> bool:
    """A result applies to a call in flight, or reveals that a call given up succeeded
    (recorded only if the money allows it: `late_success_fits`)."""
    if result.status == PSPStatus.PROCESSING:
        return call.in_flight and not call.psp_processing
    if result.status == PSPStatus.REQUIRES_ACTION and call.kind == CallKind.AUTHORIZE:
        return call.in_flight and not call.awaiting_buyer
    late_success = call.failed and result.status in SUCCESS[call.kind]
    return call.in_flight or (late_success and late_success_fits)


def settle(
    status: OrderStatus,
    review: dict[str, Any] | None,
    call: PspCall,
    moves: dict[OrderStatus, OrderStatus],
) -> tuple[OrderStatus, dict[str, Any] | None]:
    """The order's status and review after `call` got its outcome.

    The outcome of the reviewed call ends the review (back to the status it interrupted);
    under review for another call, the outcome moves the status the review returns to; a
    terminal status never moves.
    """
    if review and (review["kind"], review["number"]) == (call.kind, call.number):
        status, review = S(review["since"]), None
    if review:
        since = S(review["since"])
        return status, {**review, "since": since if since in TERMINAL else moves.get(since, since)}
    if status not in TERMINAL and status in moves:
        return moves[status], review
    return status, review
