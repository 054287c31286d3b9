"""POST /v1/webhooks/psp: the PSP's notifications, verified before they are parsed."""

from __future__ import annotations

import json
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from adapters.psp.signature import HEADER, InvalidSignature, verify
from adapters.psp.simulator import map_status
from api.deps import App
from api.problems import Problem, responses
from domain.calls import CallKind
from domain.errors import OrderNotFound
from domain.ids import parse_psp_key
from domain.psp import PSPResult

router = APIRouter(tags=["webhooks"])
Text = Annotated[str, Field(min_length=1, max_length=255)]


class PaymentObject(BaseModel):
    id: Text
    status: Literal[
        "authorized", "captured", "declined", "voided", "refunded", "partially_refunded"
    ]
    amount: Annotated[int, Field(ge=0, strict=True)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    idempotency_key: Text
    decline_code: str | None = None
    decline_message: str | None = None


class EventData(BaseModel):
    object: PaymentObject


class WebhookEvent(BaseModel):
    id: Text
    type: Text
    data: EventData


class WebhookAck(BaseModel):
    """`applied` changed an order; `duplicate` and `ignored` changed nothing."""

    status: Literal["applied", "duplicate", "ignored"]


@router.post("/v1/webhooks/psp", responses=responses(400, 401, 413, 503))
async def psp_webhook(request: Request, app: App) -> WebhookAck:
    """Verify the HMAC signature over the raw body, then apply the event once."""
    body = await request.body()
    secret = request.app.state.container.settings.webhook_secret.get_secret_value()
    try:
        verify(secret, request.headers.get(HEADER), body, now=time.time())
    except InvalidSignature as error:
        raise Problem(401, "invalid-signature", str(error)) from None
    event = _parse(body)
    payment = event.data.object
    target = parse_psp_key(payment.idempotency_key)
    if target is None:
        return WebhookAck(status="ignored")
    order_id, kind, number = target
    result = PSPResult(
        psp_reference=payment.id,
        status=map_status(payment.status),
        amount=payment.amount,
        currency=payment.currency,
        decline_code=payment.decline_code,
        decline_message=payment.decline_message,
    )
    try:
        written = await run_in_threadpool(
            app.apply_webhook, order_id, event.id, event.type, CallKind(kind), number, result
        )
    except OrderNotFound:
        return WebhookAck(status="ignored")
    return WebhookAck(status="applied" if written.result else "duplicate")


def _parse(body: bytes) -> WebhookEvent:
    try:
        return WebhookEvent.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        raise Problem(400, "malformed-webhook", "the event is not a payment notification") from None
