"""Builders for PaymentOrder tests: a fixed clock and the PSP answers the domain expects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from domain.cart import Checkout, LineItem
from domain.order import PaymentOrder
from domain.psp import PSPResult, PSPStatus

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=30)
ITEMS = (LineItem("s1", "mug", 2, 1000), LineItem("s2", "tea", 1, 550))


def placed(capture_method: str = "automatic", payment_method: str = "pm_card_visa") -> PaymentOrder:
    """A placed order (2550 EUR, two sellers, 10% fee) with its first attempt requested."""
    checkout = Checkout("buyer-1", "EUR", ITEMS, payment_method, capture_method)
    order = PaymentOrder.place(
        checkout, client_id="c1", idempotency_key="k1", fee_bps=1000, now=NOW, session_ttl=TTL
    )
    order.request_authorization(payment_method, NOW)
    return order


def answer(status: PSPStatus, amount: int = 2550, **extra: Any) -> PSPResult:
    return PSPResult("pay_1", status, amount, "EUR", **extra)


def replayed(order: PaymentOrder) -> PaymentOrder:
    """Rebuild the order from all its events so far (pending ones included)."""
    events = [*order.collect_events()]
    rebuilt = None
    for e in events:
        rebuilt = e.mutate(rebuilt)
    for e in events:
        order.pending_events.append(e)
    assert isinstance(rebuilt, PaymentOrder)
    return rebuilt


def state(order: PaymentOrder) -> dict[str, object]:
    """Everything the order knows, without the events not yet saved."""
    return {k: v for k, v in vars(order).items() if k != "_pending_events"}
