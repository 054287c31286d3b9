"""An order's events as a readable audit timeline for operators: one sentence per event, with
the event's own fields kept alongside for the full record."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from api.pages import text
from api.pages.rendering import utc
from api.schemas import event_out
from app.application import PaymentsApp
from domain.money import format_amount

SENTENCES: dict[str, str] = {
    "Placed": "Checkout placed by {buyer_id} for {amount_text} ({capture_method} capture).",
    "AuthorizationRequested": "Attempt {attempt} with {payment_method} recorded before "
    "calling the PSP.",
    "PSPRequestResent": "{kind} {number} sent again (try {try_number}) with the same PSP key.",
    "PSPProcessing": "The PSP is still processing {kind} {number}; its result comes by webhook.",
    "Authorized": "Attempt {attempt} authorized for {amount_text}.",
    "Captured": "Captured {amount_text}.",
    "Declined": "Attempt {attempt} declined: {code}. {explanation}",
    "Voided": "The authorization of attempt {attempt} was voided (released).",
    "Refunded": "Refunded {amount_text}.",
    "PSPTimedOut": "No answer from the PSP for {kind} {number} within {elapsed_ms} ms: "
    "outcome unknown.",
    "PSPErrored": "The PSP failed {kind} {number}: {code} ({processed_text}). {explanation}",
    "OutcomeInquired": "Asked the PSP about {kind} {number}: {found_text}.",
    "RetryScheduled": "Next step for {kind} {number}: {action} at {due_at} (retry {retry}, "
    "because {reason}).",
    "CallFailed": "{kind} {number} given up: {code}. {explanation}",
    "SentToManualReview": "Sent to manual review: {reason}. {explanation}",
    "ManuallyResolved": "{operator} resolved {kind} {number} as {outcome}: “{note}”",
    "Expired": "The checkout session ended without a payment.",
    "Canceled": "Canceled.",
    "CaptureRequested": "Capture {operation} of {amount_text} recorded before calling the PSP.",
    "VoidRequested": "Void {operation} of attempt {attempt} recorded before calling the PSP.",
    "RefundRequested": "Refund {operation} of {amount_text} recorded before calling the PSP.",
    "WebhookApplied": "PSP webhook {event_type} applied to {kind} {number}.",
}


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def describe(kind: str, data: dict[str, Any], currency: str) -> str:
    """One event in a sentence."""
    fields = _Fields({k: utc(v) if isinstance(v, datetime) else v for k, v in data.items()})
    if isinstance(data.get("amount"), int):
        fields["amount_text"] = format_amount(data["amount"], currency)
    code = data.get("code") or data.get("reason")
    fields["explanation"] = text.explain(code, declined=kind == "Declined") if code else ""
    processed = data.get("processed")
    fields["processed_text"] = (
        "processing unknown" if processed is None else "processed" if processed else "not processed"
    )
    status = data.get("psp_status")
    fields["found_text"] = f"found, {status}" if data.get("found") else "it never arrived"
    return SENTENCES.get(kind, kind).format_map(fields).strip()


def timeline(app: PaymentsApp, order_id: UUID, currency: str) -> list[dict[str, Any]]:
    """The order's audit trail, oldest first, each event described."""
    entries = []
    for event in app.history(order_id):
        out = event_out(event)
        entries.append(
            {
                "version": out.version,
                "type": out.type,
                "at": out.occurred_at,
                "sentence": describe(out.type, out.data, currency),
                "fields": [(k, _show(v)) for k, v in sorted(out.data.items())],
            }
        )
    return entries


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return utc(value)
    return json.dumps(value, default=str, ensure_ascii=False)
