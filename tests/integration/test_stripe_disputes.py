"""Money after the payment through Stripe, on localstripe: `charge.dispute.*` webhooks
signed as Stripe signs them for a real PaymentIntent (localstripe has no disputes of its own
to send; the PaymentIntent's metadata says which order and attempt it is), and the balance
transactions read as a settlement report that reconciles with the orders."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from adapters.psp.stripe import StripePSP
from adapters.psp.stripe_report import stripe_report
from adapters.settlement_report import parse
from api.main import create_app
from api.threaded_server import ThreadedServer
from bootstrap.composition import Container, build
from bootstrap.migrate import migrate
from bootstrap.settings import Settings
from chaos.localstripe import LocalStripe
from domain.cart import Checkout, LineItem
from domain.statuses import OrderStatus
from tests.integration.conftest import FAST

SECRET = "whsec_disputes"


@pytest.fixture
def stripe_api(localstripe: LocalStripe, tmp_path: Any) -> Iterator[tuple[str, Container]]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/payments.db",
        psp="stripe",
        stripe_secret_key="sk_test_disputes",
        stripe_api_base=localstripe.url,
        stripe_webhook_secret=SECRET,
        **FAST,
    )
    migrate(settings)
    container = build(settings)
    server = ThreadedServer(create_app(container)).start()
    yield server.url, container
    server.stop()
    container.close()


def dispute_event(intent: str, status: str, amount: int = 1000) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "charge.dispute.closed" if status in ("won", "lost") else "charge.dispute.created",
        "data": {
            "object": {
                "id": "dp_1",
                "object": "dispute",
                "amount": amount,
                "currency": "eur",
                "payment_intent": intent,
                "reason": "fraudulent",
                "status": status,
                "evidence_details": {"due_by": int(time.time()) + 7 * 86400},
                "balance_transactions": [{"fee": 1500}],
            }
        },
    }


def post(url: str, event: dict[str, Any]) -> httpx.Response:
    body = json.dumps(event)
    t = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    headers = {"Stripe-Signature": f"t={t},v1={digest}", "Content-Type": "application/json"}
    return httpx.post(f"{url}/v1/webhooks/stripe", content=body, headers=headers, timeout=10)


def test_a_stripe_dispute_is_recorded_on_the_order_its_payment_intent_names(
    stripe_api: tuple[str, Container],
) -> None:
    url, container = stripe_api
    checkout = Checkout("b", "EUR", (LineItem("s1", "mug", 1, 2550),), "pm_card_visa", "automatic")
    order = container.app.place_checkout(
        checkout, client_id="c1", idempotency_key=str(uuid.uuid4())
    ).order
    assert order.status == OrderStatus.SUCCEEDED
    intent = order.attempts[0].psp_reference
    assert intent is not None

    opened = dispute_event(intent, "needs_response")
    assert post(url, opened).json()["status"] == "applied"
    assert post(url, opened).json()["status"] == "duplicate"
    assert post(url, dispute_event(intent, "lost")).json()["status"] == "applied"
    order = container.app.get_order(order.id)
    [dispute] = order.disputes.values()
    assert (dispute.amount, dispute.fee, dispute.status.value) == (1000, 1500, "lost")
    assert order.status == OrderStatus.SUCCEEDED

    inquiry = dispute_event(intent, "warning_needs_response") | {"id": "evt_inquiry"}
    assert post(url, inquiry).json()["status"] == "ignored"  # an inquiry takes no money
    stranger = dispute_event("pi_notours", "needs_response")
    assert post(url, stranger).json()["status"] == "ignored"
    malformed = dispute_event(intent, "needs_response")
    malformed["data"]["object"]["amount"] = "1000"
    assert post(url, malformed).status_code == 400


def test_stripes_balance_transactions_reconcile_with_the_orders(
    stripe_api: tuple[str, Container], localstripe: LocalStripe, tmp_path: Any
) -> None:
    _, container = stripe_api
    started = datetime.now(UTC) - timedelta(seconds=1)
    items = (LineItem("s1", "mug", 1, 2550),)
    paid = container.app.place_checkout(
        Checkout("b", "EUR", items, "pm_card_visa", "automatic"),
        client_id="c1",
        idempotency_key=str(uuid.uuid4()),
    ).order
    refunded = container.app.refund(paid.id, 500, "r1").order
    assert refunded.status == OrderStatus.PARTIALLY_REFUNDED
    psp = StripePSP("sk_test_disputes", localstripe.url, 5)
    try:
        rows = parse(stripe_report(psp, started, datetime.now(UTC) + timedelta(seconds=1)))
    finally:
        psp.close()
    ours = [r for r in rows if r.merchant_reference == str(paid.id)]
    assert sorted((r.type, r.gross) for r in ours) == [("charge", 2550), ("refund", -500)]
    imported = container.reconciliation.import_rows("stripe", ours)
    assert imported.matched == 2 and container.reconciliation.breaks("open") == []
