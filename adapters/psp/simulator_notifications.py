"""The simulator's webhooks: `PSP-Signature` verified over the raw body, then parsed.

The HTTP route hands over the raw bytes and headers; nothing is parsed before the HMAC
signature is checked (adapters/psp/signature.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from adapters.psp.signature import HEADER, InvalidSignature, verify
from adapters.psp.simulator import map_status
from domain.disputes import DisputeNotice, DisputeStatus
from domain.ids import parse_psp_key
from domain.inputs import require_storable
from domain.money import MAX_AMOUNT
from domain.psp import (
    MalformedNotification,
    Notification,
    NotificationParser,
    PSPResult,
    UnverifiedNotification,
)

Text = Annotated[str, Field(min_length=1, max_length=255)]
UnixTime = Annotated[int, Field(gt=0, lt=253_402_300_800, strict=True)]


class Notice(BaseModel):
    """Webhook bodies: any text or integer we could not store is malformed (domain.inputs)."""

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return require_storable(value)


class PaymentObject(Notice):
    id: Text
    status: Literal[
        "authorized", "captured", "declined", "voided", "refunded", "partially_refunded"
    ]
    amount: Annotated[int, Field(ge=0, le=MAX_AMOUNT, strict=True)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    idempotency_key: Text
    decline_code: Annotated[str, Field(max_length=100)] | None = None
    decline_message: Annotated[str, Field(max_length=500)] | None = None
    authorization_expires_at: UnixTime | None = None


Amount = Annotated[int, Field(ge=0, le=MAX_AMOUNT, strict=True)]


class DisputeObject(Notice):
    """`dispute.created` / `dispute.closed`: a chargeback of one of our payments."""

    id: Text
    payment: Text
    idempotency_key: Text
    """The payment's own request key: which order and attempt it is."""
    status: Literal["needs_response", "under_review", "won", "lost"]
    amount: Amount
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    fee: Amount = 0
    reason: Annotated[str, Field(min_length=1, max_length=100)]
    evidence_due_by: UnixTime | None = None


class EventData(Notice):
    object: PaymentObject


class DisputeData(Notice):
    object: DisputeObject


class WebhookEvent(Notice):
    id: Text
    type: Text
    data: EventData


class DisputeEvent(Notice):
    id: Text
    type: Literal["dispute.created", "dispute.closed"]
    data: DisputeData


class SimulatorNotifications(NotificationParser):
    """Notifications from a PSP that speaks the simulator's contract."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def parse(self, body: bytes, headers: Mapping[str, str], now: float) -> Notification:
        try:
            verify(self.secret, headers.get(HEADER), body, now=now)
        except InvalidSignature as error:
            raise UnverifiedNotification(str(error)) from None
        raw = _json(body)
        if isinstance(raw, dict) and str(raw.get("type", "")).startswith("dispute."):
            return _dispute(raw)
        event = _event(raw)
        payment = event.data.object
        result = PSPResult(
            psp_reference=payment.id,
            status=map_status(payment.status),
            amount=payment.amount,
            currency=payment.currency,
            decline_code=payment.decline_code,
            decline_message=payment.decline_message,
            authorization_expires_at=_moment(payment.authorization_expires_at),
        )
        call = parse_psp_key(payment.idempotency_key)
        return Notification(event.id, event.type, call, result)


def _moment(seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise MalformedNotification("the event is not JSON") from None


def _event(raw: Any) -> WebhookEvent:
    try:
        return WebhookEvent.model_validate(raw)
    except ValidationError:
        raise MalformedNotification("the event is not a payment notification") from None


def _dispute(raw: Any) -> Notification:
    try:
        event = DisputeEvent.model_validate(raw)
    except ValidationError:
        raise MalformedNotification("the event is not a dispute notification") from None
    dispute = event.data.object
    due = dispute.evidence_due_by
    notice = DisputeNotice(
        dispute_id=dispute.id,
        status=DisputeStatus(dispute.status),
        amount=dispute.amount,
        currency=dispute.currency,
        fee=dispute.fee,
        reason=dispute.reason,
        evidence_due_by=_moment(due),
    )
    call = parse_psp_key(dispute.idempotency_key)
    if call is not None and call[1] != "authorize":
        call = None  # a dispute is of a payment, which an authorization created
    return Notification(event.id, event.type, call, None, dispute=notice)
