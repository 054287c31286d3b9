"""The read model serves stored documents as they are: they must be exactly what the API's
response model would write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from api.schemas import OrderOut
from domain.calls import CallKind
from domain.psp import PSPStatus
from projections.documents import order_document, order_json, utc
from tests.unit.orders import answer, placed


def test_a_stored_document_is_what_the_response_model_writes() -> None:
    order = placed()
    declined = answer(PSPStatus.DECLINED, decline_code="card_declined")
    order.record_result(CallKind.AUTHORIZE, 1, declined)
    document = order_document(order)
    assert "next_action" not in document  # carried only while a challenge is pending
    assert OrderOut.model_validate(document).model_dump(mode="json", exclude_unset=True) == document
    served = order_json(order)
    assert OrderOut.model_validate_json(served).model_dump_json(exclude_unset=True) == served


def test_a_pending_challenge_is_in_the_document_as_the_response_model_writes_it() -> None:
    order = placed()
    challenged = answer(PSPStatus.REQUIRES_ACTION, action_url="https://psp.example/challenge/p1")
    order.record_result(CallKind.AUTHORIZE, 1, challenged)
    document = order_document(order)
    assert document["status"] == "requires_action"
    assert document["next_action"] == {
        "type": "redirect_to_url",
        "url": "https://psp.example/challenge/p1",
        "return_url": None,
    }
    assert OrderOut.model_validate(document).model_dump(mode="json", exclude_unset=True) == document


def test_times_are_utc_with_a_z_like_pydantic_writes_them() -> None:
    assert utc(datetime(2026, 1, 1, 1, 2, 3, 456, tzinfo=UTC)) == "2026-01-01T01:02:03.000456Z"
    assert utc(datetime(2026, 1, 1, 1, 2, 3, tzinfo=UTC)) == "2026-01-01T01:02:03Z"
    paris = timezone(timedelta(hours=1))
    assert utc(datetime(2026, 1, 1, 2, 2, 3, tzinfo=paris)) == "2026-01-01T01:02:03Z"


offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
)


@given(moments)
def test_any_time_is_written_as_isoformat_in_utc_and_as_pydantic_writes_it(
    moment: datetime,
) -> None:
    written = utc(moment)
    assert written == moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert TypeAdapter(datetime).dump_json(moment.astimezone(UTC)).decode() == f'"{written}"'


def test_the_document_writes_its_id_and_times_as_str_and_utc_do() -> None:
    order = placed()
    order.expires_at = datetime(2026, 1, 1, 2, 2, 3, 7, tzinfo=timezone(timedelta(hours=1)))
    document = order_document(order)
    assert document["id"] == str(order.id)
    assert document["expires_at"] == utc(order.expires_at) == "2026-01-01T01:02:03.000007Z"
    assert document["created_at"] == utc(order.created_on)
    assert document["updated_at"] == utc(order.modified_on)
