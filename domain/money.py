"""Money as integer minor units of an ISO 4217 currency. Never floats."""

from __future__ import annotations

from collections.abc import Sequence

from domain.currencies import EXPONENTS
from domain.errors import InvalidInput

MAX_AMOUNT = 10**12
"""The largest amount, in minor units, that one payment order may carry."""


def exponent(currency: str) -> int:
    """Number of decimal places of a currency's minor unit (JPY 0, EUR 2, KWD 3)."""
    try:
        return EXPONENTS[currency]
    except KeyError:
        raise InvalidInput(f"unknown currency {currency!r}", field="currency") from None


def is_currency(code: str) -> bool:
    """True for a circulating ISO 4217 code we accept."""
    return code in EXPONENTS


def format_amount(amount: int, currency: str) -> str:
    """Render minor units for people: 1234 EUR -> '12.34 EUR', 1234 JPY -> '1234 JPY'."""
    places = exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, minor = divmod(abs(amount), 10**places)
    text = f"{whole:,}" if places == 0 else f"{whole:,}.{minor:0{places}d}"
    return f"{sign}{text} {currency}"


def fee_of(gross: int, bps: int) -> int:
    """Platform fee on a gross amount in basis points, rounded half up to a minor unit."""
    return (gross * bps + 5_000) // 10_000


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights` so the parts sum exactly to `total`.

    Largest-remainder method; ties go to the earlier weight, so it is deterministic.
    """
    if total < 0 or any(w < 0 for w in weights):
        raise InvalidInput("cannot allocate negative amounts")
    weight_sum = sum(weights)
    if weight_sum == 0:
        return [total] + [0] * (len(weights) - 1) if weights else []
    parts = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts
