"""The read model serves stored documents as they are: they must be exactly what the API's
response model would write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

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
    assert OrderOut.model_validate(document).model_dump(mode="json") == document
    served = order_json(order)
    assert OrderOut.model_validate_json(served).model_dump_json() == served


def test_times_are_utc_with_a_z_like_pydantic_writes_them() -> None:
    assert utc(datetime(2026, 1, 1, 1, 2, 3, 456, tzinfo=UTC)) == "2026-01-01T01:02:03.000456Z"
    assert utc(datetime(2026, 1, 1, 1, 2, 3, tzinfo=UTC)) == "2026-01-01T01:02:03Z"
    paris = timezone(timedelta(hours=1))
    assert utc(datetime(2026, 1, 1, 2, 2, 3, tzinfo=paris)) == "2026-01-01T01:02:03Z"
