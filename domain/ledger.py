"""Double-entry posting rules: every capture and refund becomes a set of postings summing to 0.

Debits are positive, credits negative. On capture the PSP owes us the money
(debit `psp_receivable`), each seller is owed their payout (credit `seller_payable:<id>`)
and the platform earns its fee (credit `platform_revenue`); a refund reverses exactly the
shares it took back. So every posting set sums to zero, and so does the whole ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.cart import SellerShare, shares_from
from domain.values import quick_init

PSP_RECEIVABLE = "psp_receivable"
PLATFORM_REVENUE = "platform_revenue"
PSP_FEES = "psp_fees"
DISPUTED_FUNDS = "disputed_funds"
"""Money a buyer's bank took back while a dispute is open (an asset we may win back)."""
DISPUTE_LOSSES = "dispute_losses"


def seller_payable(seller_id: str) -> str:
    return f"seller_payable:{seller_id}"


@quick_init
@dataclass(frozen=True, slots=True)
class Posting:
    account: str
    currency: str
    amount: int
    """Debit positive, credit negative, in minor units."""


def postings_for(event: Any, currency: str) -> list[Posting]:
    """The postings an event makes (none for events that move no money)."""
    kind = type(event).__name__
    if kind == "Captured":
        return _postings(shares_from(event.allocation), currency, sign=1)
    if kind == "Refunded":
        return _postings(shares_from(event.allocation), currency, sign=-1)
    if kind == "DisputeOpened":
        return _nonzero(
            [
                Posting(DISPUTED_FUNDS, currency, event.amount),
                Posting(PSP_FEES, currency, event.fee),
                Posting(PSP_RECEIVABLE, currency, -(event.amount + event.fee)),
            ]
        )
    if kind == "DisputeClosed":
        return _dispute_outcome(event, currency)
    return []


def _dispute_outcome(event: Any, currency: str) -> list[Posting]:
    """Won: the PSP gives the money back. Lost: each seller bears their payout's share, pro
    rata as the event recorded (their payable shrinks) and the platform its fee's share
    (`dispute_losses`, as a refund gives the fee back); or the platform bears it all."""
    release = Posting(DISPUTED_FUNDS, currency, -event.amount)
    if event.outcome == "won":
        return _nonzero([Posting(PSP_RECEIVABLE, currency, event.amount), release])
    shares = shares_from(event.allocation)
    if shares:
        bearers = [Posting(seller_payable(s.seller_id), currency, s.payout) for s in shares]
        fees = Posting(DISPUTE_LOSSES, currency, sum(s.platform_fee for s in shares))
        return _nonzero([*bearers, fees, release])
    return _nonzero([Posting(DISPUTE_LOSSES, currency, event.amount), release])


def _nonzero(postings: list[Posting]) -> list[Posting]:
    return [p for p in postings if p.amount]


def _postings(shares: tuple[SellerShare, ...], currency: str, sign: int) -> list[Posting]:
    gross = sum(s.gross for s in shares)
    postings = [Posting(PSP_RECEIVABLE, currency, sign * gross)]
    postings += [Posting(seller_payable(s.seller_id), currency, -sign * s.payout) for s in shares]
    fee = sum(s.platform_fee for s in shares)
    postings.append(Posting(PLATFORM_REVENUE, currency, -sign * fee))
    return [p for p in postings if p.amount]
