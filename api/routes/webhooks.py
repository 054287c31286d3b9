"""POST /v1/webhooks/psp and /v1/webhooks/stripe: PSP notifications, handed raw to the
connector that reads them.

The connector verifies the signature before it parses anything (domain.psp.NotificationParser);
this route only maps its verdict to HTTP and applies the result once.
"""

from __future__ import annotations

import time
from typing import Literal
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from api.deps import App
from api.problems import Problem, responses
from app.application import PaymentsApp, call_key
from bootstrap.composition import Container
from domain.calls import CallKind
from domain.disputes import DisputeNotice
from domain.errors import IllegalTransition, OrderNotFound
from domain.psp import MalformedNotification, Notification, PSPOutage, UnverifiedNotification

router = APIRouter(tags=["webhooks"])


class WebhookAck(BaseModel):
    """`applied` changed an order; `duplicate` and `ignored` changed nothing."""

    status: Literal["applied", "duplicate", "ignored"]


@router.post("/v1/webhooks/psp", responses=responses(400, 401, 413, 503))
async def psp_webhook(request: Request, app: App) -> WebhookAck:
    """Verify the HMAC signature (`PSP-Signature`) over the raw body, then apply the event
    once."""
    return await apply_notification(request, app, "psp")


@router.post("/v1/webhooks/stripe", responses=responses(400, 401, 413, 503))
async def stripe_webhook(request: Request, app: App) -> WebhookAck:
    """Verify `Stripe-Signature` with the SDK over the raw body, then apply the event once
    (`payment_intent.*`, `charge.refunded`; others are acknowledged and ignored)."""
    return await apply_notification(request, app, "stripe")


async def apply_notification(request: Request, app: PaymentsApp, connector: str) -> WebhookAck:
    """The routes' work (also the webhook lane's: api/webhook_lane.py): read the body, let
    `connector` verify and parse it, apply what it says once."""
    body = await request.body()
    parser = request.app.state.container.notifications[connector]
    try:
        notification: Notification = parser.parse(body, request.headers, time.time())
    except UnverifiedNotification as error:
        raise Problem(401, "invalid-signature", str(error)) from None
    except MalformedNotification as error:
        raise Problem(400, "malformed-webhook", str(error)) from None
    call = notification.call
    if call is None and notification.payment is not None:  # a dispute: whose payment?
        psp = request.app.state.container.psp
        try:
            call = await run_in_threadpool(psp.call_of, notification.payment)
        except PSPOutage:
            raise Problem(503, "psp-unavailable", "could not ask the PSP; send it again") from None
    if call is None:
        return WebhookAck(status="ignored")
    order_id, kind, number = call
    if notification.dispute is not None:
        return await _apply_dispute(
            app, notification.event_id, order_id, number, notification.dispute
        )
    if notification.result is None:
        return WebhookAck(status="ignored")
    seen = request.app.state.container.recent_webhooks
    key = f"{connector}:{notification.event_id}"
    if await _a_known_copy(request.app.state.container, app, key, order_id, kind, number):
        return WebhookAck(status="duplicate")
    try:
        written = await run_in_threadpool(
            app.apply_webhook,
            order_id,
            notification.event_id,
            notification.event_type,
            CallKind(kind),
            number,
            notification.result,
        )
    except OrderNotFound:
        return WebhookAck(status="ignored")
    seen.add(key)
    return WebhookAck(status="applied" if written.result else "duplicate")


async def _a_known_copy(
    container: Container, app: PaymentsApp, key: str, order_id: UUID, kind: str, number: int
) -> bool:
    """`_known_duplicate` at once, or after waiting while a checkout (on this process or
    another of its `serve`) is still waiting for or recording the call's answer."""
    if _known_duplicate(container, key, order_id, kind, number):
        return True
    await app.answered(order_id, kind, number)
    return _known_duplicate(container, key, order_id, kind, number)


def _known_duplicate(
    container: Container, key: str, order_id: UUID, kind: str, number: int
) -> bool:
    """Whether this process knows, without loading the order, that the notification
    changes nothing: it settled this very event before, or it or another process of its
    `serve` recorded the call's final outcome (no result is accepted after that:
    domain.outcomes.accepts)."""
    return key in container.recent_webhooks or (
        call_key(order_id, kind, number) in container.final_calls
    )


async def _apply_dispute(
    app: PaymentsApp, event_id: str, order_id: UUID, attempt: int, dispute: DisputeNotice
) -> WebhookAck:
    try:
        written = await run_in_threadpool(app.apply_dispute, order_id, event_id, attempt, dispute)
    except OrderNotFound:
        return WebhookAck(status="ignored")
    except IllegalTransition as error:  # not captured here yet: the PSP sends it again
        headers = {"Retry-After": "5"}
        raise Problem(503, "not-ready", error.message, headers=headers) from None
    return WebhookAck(status="applied" if written.result else "duplicate")
