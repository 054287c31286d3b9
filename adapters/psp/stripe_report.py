"""Stripe's balance transactions as a settlement report in our columns (DESIGN.md), for
`payments reconcile` with PAYMENTS_PSP=stripe.

Each balance transaction is a row: a charge (its PaymentIntent is the PSP reference, our
order id from the PaymentIntent's metadata), a refund (its id), a dispute withdrawal or
reversal (an `adjustment` whose source is the dispute), a Stripe fee, a payout. Rows are
batched by the day they become available (Stripe's own payout grouping needs its payout
reconciliation report; localstripe has neither payouts nor fees). The CSV is then read by
the same strict reader as any report, so nothing Stripe sends bypasses its checks.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from adapters.psp.stripe import StripePSP, from_stripe
from adapters.settlement_report import COLUMNS

TYPES = {"charge": "charge", "payment": "charge", "refund": "refund", "payout": "payout"}


def stripe_report(psp: StripePSP, start: datetime, end: datetime) -> bytes:
    """Every balance transaction created in [start, end), as CSV in our columns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    client = psp.client.v1
    listing = client.balance_transactions.list(params={"limit": 100})
    lo, hi = start.timestamp(), end.timestamp()
    for item in psp._each(listing):
        if lo <= (item.get("created") or 0) < hi:
            try:
                writer.writerow(_row(psp, item))
            except (KeyError, TypeError, ValueError):
                raise ValueError(
                    f"Stripe's balance transaction {item.get('id')!r} is malformed"
                ) from None
    return out.getvalue().encode()


def _row(psp: StripePSP, txn: dict[str, Any]) -> list[object]:
    currency = str(txn.get("currency", "")).upper()
    kind, reference, order = _source(psp, txn)
    gross = from_stripe(abs(txn.get("amount", 0)), currency) * (1 if txn["amount"] >= 0 else -1)
    fee = -from_stripe(txn.get("fee", 0), currency)
    day = datetime.fromtimestamp(txn.get("available_on") or txn["created"], UTC)
    booked = datetime.fromtimestamp(txn["created"], UTC).isoformat().replace("+00:00", "Z")
    return [
        f"stripe_{day:%Y%m%d}",
        booked,
        kind,
        reference,
        order,
        currency,
        gross,
        fee,
        gross + fee,
    ]


def _source(psp: StripePSP, txn: dict[str, Any]) -> tuple[str, str, str]:
    """(row type, PSP reference, our order id) of a balance transaction."""
    source = str(txn.get("source") or txn.get("id"))
    kind = TYPES.get(str(txn.get("type")), "adjustment")
    v1 = psp.client.v1
    if source.startswith("ch_"):
        intent = psp._call(lambda: v1.charges.retrieve(source)).get("payment_intent") or source
        return kind, intent, _order_of(psp, intent)
    if source.startswith("re_"):
        intent = psp._call(lambda: v1.refunds.retrieve(source)).get("payment_intent") or ""
        return "refund", source, _order_of(psp, intent)
    if source.startswith("dp_"):
        intent = psp._call(lambda: v1.disputes.retrieve(source)).get("payment_intent") or ""
        kind = "dispute" if txn.get("amount", 0) < 0 else "dispute_reversal"
        return kind, source, _order_of(psp, intent)
    if txn.get("type") == "stripe_fee":
        return "fee", source, ""
    return kind, source, ""


def _order_of(psp: StripePSP, intent: str) -> str:
    if not intent.startswith("pi_"):
        return ""
    found = psp._call(lambda: psp.client.v1.payment_intents.retrieve(intent))
    order = (found.get("metadata") or {}).get("order_id")
    return order if isinstance(order, str) else ""
