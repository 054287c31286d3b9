"""A checked-out cart: line items grouped by seller, and each seller's share of the money."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from domain.errors import InvalidInput
from domain.money import MAX_AMOUNT, allocate, exponent, fee_of
from domain.values import quick_init

DIGIT_RUN = re.compile(r"\d(?:[ ._-]?\d)*")
"""Digits, each perhaps separated from the next by one space, dash, dot or underscore."""

PSP_TOKEN = re.compile(r"^pm_[A-Za-z0-9_]{1,96}$")


def looks_like_card_number(text: str) -> bool:
    """True if `text` holds a card number: 13 to 19 digits passing the Luhn check, once the
    separators people type (spaces, dashes, dots, underscores) are removed. A run of more
    than 19 digits is refused too, since a card number could hide in it."""
    for run in DIGIT_RUN.findall(text):
        digits = re.sub(r"[ ._-]", "", run)
        if len(digits) > 19 or (len(digits) >= 13 and luhn_valid(digits)):
            return True
    return False


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check that every card number passes."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char) * (2 if position % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


@quick_init
@dataclass(frozen=True, slots=True)
class LineItem:
    """One line of the cart: what was bought from which seller, in minor units."""

    seller_id: str
    sku: str
    quantity: int
    unit_amount: int

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_amount


@quick_init
@dataclass(frozen=True, slots=True)
class SellerShare:
    """What one seller's items are worth: gross = platform_fee + payout, exactly."""

    seller_id: str
    gross: int
    platform_fee: int
    payout: int


def check_payment_method(token: str) -> None:
    """Refuse anything but a PSP token; a card number is refused without being repeated."""
    if looks_like_card_number(token):
        raise InvalidInput(
            "card numbers are not accepted; send the PSP's payment method token (pm_...)",
            field="payment_method",
        )
    if not PSP_TOKEN.fullmatch(token):
        raise InvalidInput(
            "must be a PSP payment method token: 'pm_' then letters, digits or '_'",
            field="payment_method",
        )


@dataclass(frozen=True)
class Checkout:
    """The checkout command's content; its fingerprint detects a reused Idempotency-Key."""

    buyer_id: str
    currency: str
    items: tuple[LineItem, ...]
    payment_method: str
    capture_method: str = "automatic"

    def __post_init__(self) -> None:
        exponent(self.currency)
        check_payment_method(self.payment_method)
        if not self.items:
            raise InvalidInput("a checkout needs at least one item", field="items")
        if any(i.quantity < 1 or i.unit_amount < 1 for i in self.items):
            raise InvalidInput("quantities and unit amounts must be positive", field="items")
        if self.amount > MAX_AMOUNT:
            raise InvalidInput(f"the total may not exceed {MAX_AMOUNT} minor units", field="items")
        if self.capture_method not in ("automatic", "manual"):
            raise InvalidInput("must be 'automatic' or 'manual'", field="capture_method")

    @property
    def amount(self) -> int:
        return sum(item.amount for item in self.items)

    def fingerprint(self) -> str:
        """A digest of the request's meaning; equal for the same checkout however it is spelt."""
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def split(items: tuple[LineItem, ...], fee_bps: int) -> tuple[SellerShare, ...]:
    """Group items by seller (first appearance first) and take the platform fee from each."""
    gross: dict[str, int] = {}
    for item in items:
        gross[item.seller_id] = gross.get(item.seller_id, 0) + item.amount
    return tuple(
        _share(seller, amount, fee_of(amount, fee_bps)) for seller, amount in gross.items()
    )


def prorate(shares: tuple[SellerShare, ...], amount: int) -> tuple[SellerShare, ...]:
    """The part of each share that `amount` (a partial capture or refund) stands for.

    The parts sum exactly to `amount`, and each part splits fee/payout in the share's ratio.
    """
    portions = allocate(amount, [s.gross for s in shares])
    result = []
    for share, portion in zip(shares, portions, strict=True):
        fee, _ = allocate(portion, [share.platform_fee, share.payout])
        result.append(_share(share.seller_id, portion, fee))
    return tuple(result)


def _share(seller_id: str, gross: int, fee: int) -> SellerShare:
    return SellerShare(seller_id=seller_id, gross=gross, platform_fee=fee, payout=gross - fee)


def shares_from(data: list[dict[str, Any]]) -> tuple[SellerShare, ...]:
    """Rebuild shares from an event's JSON form."""
    return tuple(SellerShare(**d) for d in data)


def shares_to(shares: tuple[SellerShare, ...]) -> list[dict[str, Any]]:
    """The JSON form of shares, for events."""
    return [asdict(s) for s in shares]


def add_shares(
    base: tuple[SellerShare, ...], *more: tuple[SellerShare, ...]
) -> tuple[SellerShare, ...]:
    """Per-seller sums of several share lists (every seller must appear in `base`)."""
    totals = {s.seller_id: [s.gross, s.platform_fee, s.payout] for s in base}
    for shares in more:
        for s in shares:
            t = totals[s.seller_id]
            t[0], t[1], t[2] = t[0] + s.gross, t[1] + s.platform_fee, t[2] + s.payout
    return tuple(SellerShare(seller, *t) for seller, t in totals.items())


def sub_shares(
    left: tuple[SellerShare, ...], right: tuple[SellerShare, ...]
) -> tuple[SellerShare, ...]:
    """Per-seller differences `left - right`."""
    negated = tuple(SellerShare(s.seller_id, -s.gross, -s.platform_fee, -s.payout) for s in right)
    return add_shares(left, negated)
