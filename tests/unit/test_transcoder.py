"""The orjson reader must give back exactly what the library's own JSON reader gives."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from hypothesis import given
from hypothesis import strategies as st

from adapters.codec import OrjsonTranscoder
from domain.errors import InvalidInput
from domain.inputs import find_unstorable


def registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return transcoder


LIBRARY, OURS = registered(JSONTranscoder()), registered(OrjsonTranscoder())
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.datetimes(timezones=st.just(UTC))
    | st.uuids()
    | st.decimals(allow_nan=False, allow_infinity=False)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_decoding_matches_the_library_on_any_value(value: Any) -> None:
    data = LIBRARY.encode(value)
    assert OURS.decode(data) == LIBRARY.decode(data)


def test_an_event_state_round_trips_with_its_types() -> None:
    state = {
        "timestamp": datetime(2026, 11, 24, 1, 2, 3, 456, tzinfo=UTC),
        "items": [{"sku": "mug", "amount": 1250, "at": datetime(2026, 1, 1, tzinfo=UTC)}],
        "id": UUID(int=7),
        "rate": Decimal("0.15"),
        "note": {"_type_": "only one key"},
    }
    assert OURS.decode(LIBRARY.encode(state)) == state


def test_bad_bytes_fail_as_the_library_fails() -> None:
    with pytest.raises(ValueError, match="Expecting"):
        OURS.decode(b"{not json")


def test_an_unknown_type_name_is_refused() -> None:
    with pytest.raises(TranscodingNotRegisteredError):
        OURS.decode(b'{"_type_":"mystery","_data_":1}')


wild_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.integers(min_value=-(2**70), max_value=-(2**63) + 1)
    | st.floats()
    | st.text(st.characters(codec=None, exclude_categories=()))
    | st.datetimes(timezones=st.just(UTC))
    | st.uuids()
)
wild_values = st.recursive(
    wild_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=())), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(wild_values)
def test_over_the_full_range_a_value_is_refused_or_reads_back_exactly(value: Any) -> None:
    try:
        data = OURS.encode(value)
    except InvalidInput:
        assert find_unstorable(value) is not None
        return
    assert OURS.decode(data) == LIBRARY.decode(data) == value


@pytest.mark.parametrize(
    "value",
    [
        {"amount": 10**30},
        {"amount": -(2**63) - 1},
        {"message": "a\x00b"},
        {"x": ["\ud800"]},
        {"rate": float("nan")},
        {"\x00": 1},
    ],
)
def test_what_could_not_read_back_the_same_is_never_written(value: Any) -> None:
    with pytest.raises(InvalidInput):
        OURS.encode(value)
