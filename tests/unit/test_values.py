"""`quick_init` (domain/values.py): a cheaper constructor for the values replays make by the
thousand, with the frozen dataclass's guarantees intact."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import InitVar, dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.cart import LineItem, SellerShare
from domain.ledger import Posting
from domain.values import quick_init


@dataclass(frozen=True, slots=True)
class Plain:
    seller_id: str
    gross: int
    platform_fee: int
    payout: int


@given(st.text(), st.integers(), st.integers(), st.integers())
def test_an_instance_is_what_the_generated_constructor_makes(
    seller: str, gross: int, fee: int, payout: int
) -> None:
    quick = SellerShare(seller, gross, fee, payout)
    by_name = SellerShare(seller_id=seller, gross=gross, platform_fee=fee, payout=payout)
    plain = Plain(seller, gross, fee, payout)
    assert quick == by_name and hash(quick) == hash(by_name)
    assert dataclasses.asdict(quick) == dataclasses.asdict(plain)
    assert repr(quick) == repr(plain).replace("Plain", "SellerShare", 1)
    assert pickle.loads(pickle.dumps(quick)) == quick  # noqa: S301 - our own bytes


@pytest.mark.parametrize(
    "value",
    [SellerShare("s1", 1000, 100, 900), LineItem("s1", "mug", 2, 500), Posting("a", "EUR", 5)],
)
def test_values_stay_frozen(value: object) -> None:
    name = dataclasses.fields(value)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, name, "changed")
    # No new attribute either (Python 3.11's frozen slotted dataclasses say so by TypeError)
    with pytest.raises((AttributeError, TypeError)):
        value.extra = 1  # type: ignore[attr-defined]


def test_arguments_are_checked_as_before() -> None:
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'payout'"):
        SellerShare("s1", 1, 0)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'payouts'"):
        SellerShare(seller_id="s1", gross=1, platform_fee=0, payouts=1)  # type: ignore[call-arg]
    assert dataclasses.replace(SellerShare("s1", 1, 0, 1), gross=2).gross == 2


def test_anything_but_a_plain_frozen_slotted_dataclass_is_refused() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclass(frozen=True, slots=True)
    class Defaulted:
        a: int = 0

    @dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = field(default_factory=list)

    @dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class KeywordOnly:
        a: int = field(kw_only=True)

    @dataclass(frozen=True, slots=True)
    class NotInInit:
        a: int = field(init=False)

    @dataclass(frozen=True, slots=True)
    class WithInitVar:
        a: int
        b: InitVar[int]

    kinds = (NoSlots, NotFrozen, Defaulted, Factory, Checked, KeywordOnly, NotInInit, WithInitVar)
    for cls in (*kinds, int):
        with pytest.raises(TypeError):
            quick_init(cls)
