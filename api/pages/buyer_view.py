"""What the buyer sees of an order: the same dict renders the page and answers its polling."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.pages import text
from domain.money import format_amount

POLL_MS = {"processing": 1500, "requires_action": 3000, "needs_review": 10_000}
"""How often the page asks again, per status; any other status is final for the buyer."""


def buyer_view(document: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The buyer's view of an order document (projections.documents.order_document)."""
    status = document["status"]
    currency = document["currency"]
    sentence = text.status_sentence(status)
    attempts = [_attempt(a) for a in document["attempts"]]
    return {
        "status": status,
        "version": document["version"],
        "headline": sentence.headline,
        "detail": _detail(document, sentence),
        "tone": sentence.tone,
        "poll_ms": POLL_MS.get(status, 0),
        "can_retry": status == "requires_payment_method"
        and datetime.fromisoformat(document["expires_at"]) > now,
        "action_url": (document.get("next_action") or {}).get("url"),
        "amount": format_amount(document["amount"], currency),
        "placed_at": document["created_at"],
        "attempts": attempts,
    }


def _detail(document: dict[str, Any], sentence: text.Sentence) -> str:
    status = document["status"]
    if status == "requires_payment_method" and document["attempts"]:
        last = document["attempts"][-1]
        reason = text.explain(last["failure_code"], declined=True)
        return f"{reason} {sentence.detail}" if reason else sentence.detail
    if status == "partially_refunded":
        currency = document["currency"]
        refunded = format_amount(document["refunded_amount"], currency)
        total = format_amount(document["amount"], currency)
        return f"{refunded} of {total} is on its way back to your card."
    return sentence.detail


def _attempt(attempt: dict[str, Any]) -> dict[str, Any]:
    label, tone = text.attempt_words(attempt["status"])
    declined = attempt["status"] == "declined"
    explanation = text.explain(attempt["failure_code"], declined=declined)
    if attempt["status"] in ("authorized", "captured", "voided"):
        explanation = ""
    return {
        "number": attempt["number"],
        "label": label,
        "tone": tone,
        "explanation": explanation,
        "method": attempt["payment_method"],
    }


def sellers(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Line items grouped by seller, each with its subtotal, in the cart's order."""
    groups: dict[str, dict[str, Any]] = {}
    currency = document["currency"]
    for item in document["items"]:
        group = groups.setdefault(item["seller_id"], {"seller": item["seller_id"], "items": []})
        group["items"].append(
            {
                "sku": item["sku"],
                "quantity": item["quantity"],
                "amount": format_amount(item["amount"], currency),
            }
        )
    for share in document["splits"]:
        if share["seller_id"] in groups:
            groups[share["seller_id"]]["subtotal"] = format_amount(share["amount"], currency)
    return list(groups.values())
