from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.money import allocate, exponent, fee_of, format_amount, is_currency


@pytest.mark.parametrize(
    ("currency", "places"), [("JPY", 0), ("KRW", 0), ("EUR", 2), ("USD", 2), ("KWD", 3)]
)
def test_exponents_follow_iso_4217(currency: str, places: int) -> None:
    assert exponent(currency) == places


def test_unknown_and_withdrawn_currencies_are_refused() -> None:
    for code in ("XXX", "XAU", "HRK", "eur", "EURO"):
        assert not is_currency(code)
    with pytest.raises(InvalidInput) as error:
        exponent("HRK")
    assert error.value.field == "currency"


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1234, "EUR", "12.34 EUR"),
        (5, "EUR", "0.05 EUR"),
        (1234, "JPY", "1,234 JPY"),
        (1234567, "KWD", "1,234.567 KWD"),
        (-250, "USD", "-2.50 USD"),
    ],
)
def test_format_amount_is_exponent_aware(amount: int, currency: str, text: str) -> None:
    assert format_amount(amount, currency) == text


def test_fee_rounds_half_up_to_a_minor_unit() -> None:
    assert fee_of(1005, 1000) == 101  # 100.5 -> 101
    assert fee_of(1004, 1000) == 100  # 100.4 -> 100
    assert fee_of(333, 1000) == 33
    assert fee_of(1000, 0) == 0
    assert fee_of(1000, 10_000) == 1000


@given(
    total=st.integers(min_value=0, max_value=10**12),
    weights=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=20),
)
def test_allocate_sums_exactly_and_stays_proportional(total: int, weights: list[int]) -> None:
    parts = allocate(total, weights)
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)
    weight_sum = sum(weights)
    if weight_sum:
        for part, weight in zip(parts, weights, strict=True):
            assert abs(part - total * weight / weight_sum) < 1 + 1e-9


def test_allocate_breaks_ties_towards_the_earlier_weight() -> None:
    assert allocate(1, [1, 1]) == [1, 0]
    assert allocate(2, [1, 1, 1]) == [1, 1, 0]


def test_allocate_refuses_negative_amounts() -> None:
    with pytest.raises(InvalidInput):
        allocate(-1, [1])
