"""Stripe's webhooks: `Stripe-Signature` verified by the SDK over the raw body, then read.

`payment_intent.*` events carry the PaymentIntent, whose metadata holds our PSP key (which
call it answers); `charge.refunded` carries the charge and its refunds, each with our key in
its metadata. Everything else is acknowledged and ignored. Duplicates and stale events are
the aggregate's business (the same rules as the simulator's webhooks).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from stripe import SignatureVerificationError, Webhook

from adapters.psp.stripe import checked_text, from_stripe, map_payment_intent, refund_result
from domain.disputes import DisputeNotice, DisputeStatus
from domain.ids import parse_psp_key
from domain.inputs import find_unstorable
from domain.psp import (
    MalformedNotification,
    Notification,
    NotificationParser,
    PSPOutage,
    PSPResult,
    UnverifiedNotification,
)

HEADER = "Stripe-Signature"
TOLERANCE_S = 300


class StripeNotifications(NotificationParser):
    """Notifications from Stripe, signed with the endpoint's `whsec_` secret."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def parse(self, body: bytes, headers: Mapping[str, str], now: float) -> Notification:
        if not self.secret:
            raise UnverifiedNotification("no Stripe webhook secret is configured")
        try:
            Webhook.construct_event(
                body.decode("utf-8"), headers.get(HEADER, ""), self.secret, TOLERANCE_S
            )
        except (SignatureVerificationError, UnicodeDecodeError, ValueError):
            raise UnverifiedNotification("the Stripe signature does not match") from None
        event = _event(body)
        kind, obj = event["type"], event["data"]["object"]
        if kind in DISPUTE_EVENTS:
            return _dispute(event["id"], kind, obj)
        try:
            call, result = _read(kind, obj)
        except PSPOutage:
            raise MalformedNotification("the event holds data we cannot read") from None
        return Notification(event["id"], kind, call, result)


DISPUTE_EVENTS = ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed")
DISPUTE_STATUS = {
    "needs_response": DisputeStatus.NEEDS_RESPONSE,
    "under_review": DisputeStatus.UNDER_REVIEW,
    "won": DisputeStatus.WON,
    "lost": DisputeStatus.LOST,
}
"""Stripe's dispute statuses as ours. Inquiries (`warning_*`) take no money and a dispute
closed by a refund (`charge_refunded`) moves none of its own: both are acknowledged and
ignored."""


def _dispute(event_id: str, kind: str, obj: dict[str, Any]) -> Notification:
    """A dispute of a PaymentIntent: which call made it is the PaymentIntent's to say."""
    if obj.get("status") not in DISPUTE_STATUS:
        return Notification(event_id, kind, None, None)
    try:
        status = DISPUTE_STATUS[obj["status"]]
        currency = checked_text(obj.get("currency"), 3).upper()
        amount = from_stripe(obj.get("amount"), currency)
        fees = [t.get("fee", 0) for t in obj.get("balance_transactions") or [] if t.get("fee")]
        fee = from_stripe(sum(fees), currency) if all(type(f) is int for f in fees) else -1
        due = (obj.get("evidence_details") or {}).get("due_by")
        notice = DisputeNotice(
            dispute_id=checked_text(obj.get("id"), 255),
            status=status,
            amount=amount,
            currency=currency,
            fee=fee,
            reason=checked_text(obj.get("reason"), 100),
            evidence_due_by=datetime.fromtimestamp(due, UTC) if type(due) is int else None,
        )
        payment = checked_text(obj.get("payment_intent"), 255)
    except (KeyError, ValueError, TypeError, PSPOutage):
        raise MalformedNotification("the dispute holds data we cannot read") from None
    if notice.fee < 0:
        raise MalformedNotification("the dispute's fee is not an amount")
    return Notification(event_id, kind, None, None, dispute=notice, payment=payment)


def _event(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
        valid = (
            isinstance(event, dict)
            and isinstance(event.get("id"), str)
            and isinstance(event.get("type"), str)
            and isinstance(event.get("data", {}).get("object"), dict)
        )
    except (ValueError, AttributeError):
        valid = False
    if not valid or find_unstorable(event) is not None:
        raise MalformedNotification("the event is not a Stripe event we can read")
    if not 0 < len(event["id"]) <= 255 or not 0 < len(event["type"]) <= 255:
        raise MalformedNotification("the event's id or type is too long")
    return event  # type: ignore[no-any-return]


def _read(kind: str, obj: dict[str, Any]) -> tuple[tuple[Any, str, int] | None, PSPResult | None]:
    if kind.startswith("payment_intent."):
        return _ours(obj), map_payment_intent(obj)
    if kind == "charge.refunded":
        refunds = (obj.get("refunds") or {}).get("data") or []
        ours = [r for r in refunds if _ours(r) is not None]
        if ours:
            newest = max(ours, key=lambda r: r.get("created") or 0)
            return _ours(newest), refund_result(newest, str(obj.get("currency", "")).upper())
    return None, None


def _ours(obj: dict[str, Any]) -> tuple[Any, str, int] | None:
    key = (obj.get("metadata") or {}).get("psp_key")
    return parse_psp_key(key) if isinstance(key, str) else None
