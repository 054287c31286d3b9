from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.cart import (
    Checkout,
    LineItem,
    SellerShare,
    add_shares,
    check_payment_method,
    luhn_valid,
    prorate,
    split,
    sub_shares,
)
from domain.errors import InvalidInput

items_strategy = st.lists(
    st.builds(
        LineItem,
        seller_id=st.sampled_from(["s1", "s2", "s3", "s4"]),
        sku=st.just("sku"),
        quantity=st.integers(1, 50),
        unit_amount=st.integers(1, 10**7),
    ),
    min_size=1,
    max_size=12,
).map(tuple)


def checkout(**overrides: object) -> Checkout:
    fields: dict[str, object] = {
        "buyer_id": "b1",
        "currency": "EUR",
        "items": (LineItem("s1", "a", 2, 1000), LineItem("s2", "b", 1, 550)),
        "payment_method": "pm_card_visa",
    }
    return Checkout(**(fields | overrides))  # type: ignore[arg-type]


@given(items=items_strategy, bps=st.integers(0, 10_000))
def test_split_sums_exactly_to_the_order_amount(items: tuple[LineItem, ...], bps: int) -> None:
    shares = split(items, bps)
    assert sum(s.gross for s in shares) == sum(i.amount for i in items)
    for share in shares:
        assert share.platform_fee + share.payout == share.gross
        assert 0 <= share.platform_fee <= share.gross
    assert [s.seller_id for s in shares] == list(dict.fromkeys(i.seller_id for i in items))


@given(items=items_strategy, bps=st.integers(0, 10_000), data=st.data())
def test_prorate_never_takes_more_than_a_share_and_sums_exactly(
    items: tuple[LineItem, ...], bps: int, data: st.DataObject
) -> None:
    shares = split(items, bps)
    total = sum(s.gross for s in shares)
    remaining = shares
    for _ in range(data.draw(st.integers(0, 4))):
        left = sum(s.gross for s in remaining)
        if left == 0:
            break
        remaining = _take(remaining, data.draw(st.integers(1, left)))
    remaining = _take(remaining, sum(s.gross for s in remaining))  # the rest, exactly
    assert all((r.gross, r.platform_fee, r.payout) == (0, 0, 0) for r in remaining)
    assert add_shares(shares, sub_shares(shares, shares)) == shares
    assert total == sum(s.gross for s in shares)


def _take(remaining: tuple[SellerShare, ...], amount: int) -> tuple[SellerShare, ...]:
    """Prorate `amount` out of `remaining`, checking the part, and return what is left."""
    part = prorate(remaining, amount)
    assert sum(p.gross for p in part) == amount
    for p, r in zip(part, remaining, strict=True):
        assert p.platform_fee + p.payout == p.gross
        assert 0 <= p.platform_fee <= r.platform_fee
        assert 0 <= p.payout <= r.payout
    return sub_shares(remaining, part)


@pytest.mark.parametrize(
    "pan",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "pm_4242424242424242",
        "378282246310005",
        "card 5555555555554444 exp 12/30",
        "pm_4242_4242_4242_4242",
        "4242.4242.4242.4242",
        "pm_card_4000_0566_5566_5556",
        "pm_" + "1" * 20,
    ],
)
def test_anything_like_a_card_number_is_refused_without_echoing_it(pan: str) -> None:
    with pytest.raises(InvalidInput) as error:
        check_payment_method(pan)
    assert "card numbers are not accepted" in error.value.message
    assert pan not in error.value.message
    assert error.value.field == "payment_method"


@pytest.mark.parametrize("token", ["pm_card_visa", "pm_card_processing", "pm_123456_abc"])
def test_psp_tokens_are_accepted(token: str) -> None:
    check_payment_method(token)


@pytest.mark.parametrize("token", ["visa", "pm_", "pm_card visa", "pm_" + "a" * 97, ""])
def test_other_payment_methods_are_refused(token: str) -> None:
    with pytest.raises(InvalidInput):
        check_payment_method(token)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"currency": "ZZZ"}, "currency"),
        ({"items": ()}, "items"),
        ({"items": (LineItem("s1", "a", 0, 100),)}, "items"),
        ({"items": (LineItem("s1", "a", 1, 10**13),)}, "items"),
        ({"capture_method": "later"}, "capture_method"),
        ({"payment_method": "4111111111111111"}, "payment_method"),
    ],
)
def test_invalid_checkouts_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        checkout(**overrides)
    assert error.value.field == field


def test_fingerprint_is_stable_and_sensitive_to_every_field() -> None:
    assert checkout().fingerprint() == checkout().fingerprint()
    variants = [
        {"buyer_id": "b2"},
        {"currency": "USD"},
        {"payment_method": "pm_card_declined"},
        {"capture_method": "manual"},
        {"items": (LineItem("s1", "a", 2, 1001), LineItem("s2", "b", 1, 550))},
    ]
    prints = {checkout(**v).fingerprint() for v in variants}  # type: ignore[arg-type]
    assert len(prints) == len(variants)
    assert checkout().fingerprint() not in prints


@pytest.mark.parametrize("token", ["pm_1234567812345678", "pm_card_2026_11_27", "pm_123456789012"])
def test_digits_that_fail_the_luhn_check_are_not_card_numbers(token: str) -> None:
    assert not luhn_valid("1234567812345678")
    check_payment_method(token)


def test_the_luhn_check_knows_real_test_cards() -> None:
    assert luhn_valid("4242424242424242") and luhn_valid("378282246310005")
    assert not luhn_valid("4242424242424241")
