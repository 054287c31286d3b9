"""Disputes (chargebacks): the buyer's bank takes captured money back until the merchant
wins. Pure values and rules; the events live on the order (domain/order.py).

A dispute never changes the order's status. Its money is booked in the ledger
(domain/ledger.py): opening withdraws the amount (and the PSP's dispute fee) from what the
PSP owes us into `disputed_funds`; a win gives it back; a loss is borne by the sellers, pro
rata to their shares (PAYMENTS_DISPUTE_LIABILITY=seller), or by the platform
(`dispute_losses`). Who bears it is decided when the dispute closes and stored in the event,
so a replay books the same whatever the setting is later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class DisputeStatus(StrEnum):
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"


OPEN = frozenset({DisputeStatus.NEEDS_RESPONSE, DisputeStatus.UNDER_REVIEW})
OUTCOMES = frozenset({DisputeStatus.WON, DisputeStatus.LOST})


class Liability(StrEnum):
    """Who bears a lost dispute."""

    SELLER = "seller"
    PLATFORM = "platform"


@dataclass(frozen=True)
class DisputeNotice:
    """What the PSP says about one dispute of one of our payments."""

    dispute_id: str
    status: DisputeStatus
    amount: int
    currency: str
    fee: int
    """The PSP's dispute fee, withdrawn when it opens (not given back on a win)."""
    reason: str
    evidence_due_by: datetime | None


@dataclass
class Dispute:
    """A dispute as the order knows it."""

    id: str
    attempt: int
    amount: int
    fee: int
    reason: str
    evidence_due_by: datetime | None
    status: DisputeStatus = DisputeStatus.NEEDS_RESPONSE

    @property
    def open(self) -> bool:
        return self.status in OPEN
