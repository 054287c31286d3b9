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


def typed(value: Any) -> Any:
    """The value with each part's type beside it: `==` alone takes 1, 1.0 and True as one."""
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, repr(value))


@given(values)
def test_decoding_matches_the_library_on_any_value(value: Any) -> None:
    data = LIBRARY.encode(value)
    assert typed(OURS.decode(data)) == typed(LIBRARY.decode(data))


def test_an_event_state_round_trips_with_its_types() -> None:
    state = {
        "timestamp": datetime(2026, 11, 24, 1, 2, 3, 456, tzinfo=UTC),
        "items": [{"sku": "mug", "amount": 1250, "at": datetime(2026, 1, 1, tzinfo=UTC)}],
        "id": UUID(int=7),
        "rate": Decimal("0.15"),
        "note": {"_type_": "only one key"},
    }
    assert OURS.decode(LIBRARY.encode(state)) == state


@pytest.mark.parametrize(
    "text",
    [
        # typed values at the top, plain items below: the nested walk is skipped
        '{"at":{"_type_":"datetime_iso","_data_":"2026-01-01T00:00:00+00:00"},"items":[{"a":1}]}',
        # typed values nested as well as at the top: the walk must still find them
        '{"at":{"_type_":"uuid_hex","_data_":"00000000000000000000000000000007"},'
        '"items":[{"id":{"_type_":"uuid_hex","_data_":"00000000000000000000000000000008"}}]}',
        # a typed value whose data is itself typed: bottom-up, as json's hook
        '{"x":{"_type_":"decimal_str","_data_":{"_type_":"x","_data_":"1"}}}',
        # "_type_" keys that do not make a typed value, and "_type_" as a string
        '{"a":{"_type_":"x","b":1},"b":{"_type_":1,"_data_":2,"c":3},"c":"_type_"}',
        '{"c":["_type_",{"d":"\\"_type_\\""}],"e":{"_type_":"only one key"}}',
        # a key spelled with an escape: the count cannot see it, the full walk must run
        '{"at":{"\\u005ftype_":"uuid_hex","_data_":"00000000000000000000000000000009"}}',
        '{"_type_":"uuid_hex","_data_":"0000000000000000000000000000000a"}',
        '[{"_type_":"uuid_hex","_data_":"0000000000000000000000000000000b"}]',
    ],
)
def test_hand_written_states_decode_as_the_library_decodes_them(text: str) -> None:
    data = text.encode()
    try:
        expected = LIBRARY.decode(data)
    except TranscodingNotRegisteredError:
        with pytest.raises(TranscodingNotRegisteredError):
            OURS.decode(data)
        return
    assert OURS.decode(data) == expected


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


@given(wild_values)
def test_a_value_is_refused_exactly_when_it_holds_something_unstorable(value: Any) -> None:
    """The verdict and the field the error names are the walk's (domain.inputs), whatever the
    value."""
    where = find_unstorable(value)
    if where is None:
        assert OURS.encode(value) == LIBRARY.encode(value)  # the library's bytes, exactly
        return
    with pytest.raises(InvalidInput) as refused:
        OURS.encode(value)
    assert refused.value.field == (where or None)


@pytest.mark.parametrize(
    "value",
    [
        {"amount": 10**30},
        {"amount": 2**63},
        {"amount": -(2**63) - 1},
        {"rates": [1.5, float("-inf")]},
        {"message": "a\x00b"},
        {"x": ["\ud800"]},
        {"rate": float("nan")},
        {"\x00": 1},
        2**64,
        [1, 2**64],
        [-(2**64)],
    ],
)
def test_what_could_not_read_back_the_same_is_never_written(value: Any) -> None:
    with pytest.raises(InvalidInput):
        OURS.encode(value)


@pytest.mark.parametrize(
    "value",
    [
        {"amount": 2**63 - 1, "low": -(2**63)},  # 19 digits, in range: the walk passes it
        {"key": "1234567890123456789012"},  # digits in a text
        {"key": "run0-1765123456789012345", "list": ["[1234567890123456789"]},
        {"note": "\\u0000 written out, not a NUL"},
        {"NaN": "Infinity", "rate": 1e300},
        {10**30: "an integer key is written as text"},
    ],
)
def test_what_only_looks_suspect_is_written_as_the_library_writes_it(value: Any) -> None:
    assert find_unstorable(value) is None
    assert OURS.encode(value) == LIBRARY.encode(value)


def test_a_value_the_library_cannot_write_fails_as_the_library_fails() -> None:
    with pytest.raises(TranscodingNotRegisteredError):
        OURS.encode({"x": {1, 2}})
