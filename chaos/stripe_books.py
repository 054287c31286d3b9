"""localstripe's own books, in the simulator's shape, so the chaos invariants read one format.

Each PaymentIntent our orders created becomes {id, reference (our order id), amount, status,
auth_status, captured_amount, refunded_amount}: `auth_status` is `authorized` or `captured`
once it was confirmed and took money, `declined` or `unconfirmed` otherwise.
"""

from __future__ import annotations

from typing import Any

import stripe

STATUS = {"requires_capture": "authorized", "succeeded": "captured", "canceled": "voided"}


def declining_card(url: str, key: str) -> str:
    """A PaymentMethod localstripe declines (card 4000000000000341), made as Stripe.js would."""
    client = stripe.StripeClient(key, base_addresses={"api": url})
    card: Any = {"number": "4000000000000341", "exp_month": 12, "exp_year": 2034, "cvc": "123"}
    return str(client.v1.payment_methods.create(params={"type": "card", "card": card}).id)


def payments(url: str, key: str) -> list[dict[str, Any]]:
    """Every PaymentIntent carrying one of our order ids."""
    client = stripe.StripeClient(key, base_addresses={"api": url})
    listing = client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
    intents = [i.to_dict() for i in listing]
    ours = [i for i in intents if (i.get("metadata") or {}).get("order_id")]
    return [_payment(client, intent) for intent in ours]


def _payment(client: stripe.StripeClient, intent: dict[str, Any]) -> dict[str, Any]:
    charge = intent.get("latest_charge") or None
    refunded = _our_refunds(client, intent["id"]) if charge else 0
    captured = 0
    if intent["status"] == "succeeded" and isinstance(charge, dict):
        captured = charge["amount"] - charge["amount_refunded"] + refunded
    took_money = charge is not None and intent.get("last_payment_error") is None
    auth = ("captured" if captured else "authorized") if took_money else "unconfirmed"
    if intent.get("last_payment_error"):
        auth = "declined"
    return {
        "id": intent["id"],
        "reference": intent["metadata"]["order_id"],
        "amount": intent["amount"],
        "status": STATUS.get(intent["status"], intent["status"]),
        "auth_status": auth,
        "captured_amount": captured,
        "refunded_amount": refunded,
    }


def _our_refunds(client: stripe.StripeClient, intent_id: str) -> int:
    listing = client.v1.refunds.list(params={"payment_intent": intent_id, "limit": 100})
    refunds = [r.to_dict() for r in listing.auto_paging_iter()]
    return sum(r["amount"] for r in refunds if (r.get("metadata") or {}).get("psp_key"))
