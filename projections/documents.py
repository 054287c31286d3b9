"""The order as clients read it: one dict, built from the aggregate, stored by the read model.

The API validates its responses from this shape, so the read model and a rebuild from the
event store (time travel, read-your-writes) answer with the same document.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from domain.calls import Attempt
from domain.cart import LineItem, SellerShare
from domain.disputes import Dispute
from domain.order import PaymentOrder


def order_document(order: PaymentOrder) -> dict[str, Any]:
    """JSON-ready view of an order: its document (`order_json`), parsed."""
    document: dict[str, Any] = orjson.loads(order_json(order))
    return document


def order_json(order: PaymentOrder) -> str:
    """The order's document as compact JSON: what the read model stores and the API sends.
    Its UUID and times go to orjson as they are: it writes a UUID as `str` does and a time in
    UTC as `utc` does, in less time than making each a string first (a rebuild writes two
    documents per order, and the audit one)."""
    return orjson.dumps(_document(order), option=orjson.OPT_UTC_Z).decode()


def _document(order: PaymentOrder) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": order.id,
        "status": order.status.value,
        "buyer_id": order.buyer_id,
        "currency": order.currency,
        "amount": order.amount,
        "capture_method": order.capture_method,
        "items": [_item(i) for i in order.items],
        "splits": [_split(s) for s in order.splits],
        "attempts": [_attempt(a) for a in order.attempts],
        "captured_amount": order.captured_amount,
        "refunded_amount": order.refunded_amount,
        "expires_at": in_utc(order.expires_at),
        "created_at": in_utc(order.created_on),
        "updated_at": in_utc(order.modified_on),
        "version": order.version,
    }
    if (next_action := order.next_action) is not None:
        document["next_action"] = next_action  # only while the buyer's bank waits
    if order.disputes:  # only for orders that were ever disputed
        document["disputes"] = [_dispute(d) for d in order.disputes.values()]
    return document


def _dispute(dispute: Dispute) -> dict[str, Any]:
    due = dispute.evidence_due_by
    return {
        "id": dispute.id,
        "status": dispute.status.value,
        "amount": dispute.amount,
        "reason": dispute.reason,
        "evidence_due_by": in_utc(due) if due is not None else None,
    }


def is_refund(event: Any) -> bool:
    """Whether an event gave money back to the buyer (the marketplace is told of each)."""
    return type(event).__name__ == "Refunded"


def utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a 'Z', exactly as pydantic writes datetimes in responses, so a
    stored document can be served as it is. orjson writes the same text as `isoformat`
    (microseconds only when there are some) in a third of the time. A document's own
    times are written by orjson inside the document (`order_json`), the same way."""
    return orjson.dumps(in_utc(moment), option=orjson.OPT_UTC_Z)[1:-1].decode()


def in_utc(moment: datetime) -> datetime:
    """The same moment in UTC (itself when it is), which orjson writes with a 'Z'."""
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def _item(item: LineItem) -> dict[str, Any]:
    return {
        "seller_id": item.seller_id,
        "sku": item.sku,
        "quantity": item.quantity,
        "unit_amount": item.unit_amount,
        "amount": item.amount,
    }


def _split(share: SellerShare) -> dict[str, Any]:
    return {
        "seller_id": share.seller_id,
        "amount": share.gross,
        "platform_fee": share.platform_fee,
        "payout": share.payout,
    }


def _attempt(attempt: Attempt) -> dict[str, Any]:
    document: dict[str, Any] = {
        "number": attempt.number,
        "status": attempt.status.value,
        "payment_method": attempt.payment_method,
        "psp_reference": attempt.psp_reference,
        "failure_code": attempt.failure_code,
        "failure_message": attempt.failure_message,
    }
    if attempt.authorization_expires_at is not None:  # only for holds that lapse
        document["authorization_expires_at"] = in_utc(attempt.authorization_expires_at)
    return document
