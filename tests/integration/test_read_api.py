"""The query side over HTTP: lists, read-your-writes, the dashboard, the ledger, metrics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.main import create_app
from api.threaded_server import ThreadedServer
from bootstrap.composition import build
from bootstrap.migrate import migrate
from bootstrap.settings import Settings
from tests.integration.conftest import FAST

CART: dict[str, Any] = {
    "buyer_id": "buyer-1",
    "currency": "EUR",
    "items": [
        {"seller_id": "s1", "sku": "a", "quantity": 1, "unit_amount": 1000},
        {"seller_id": "s2", "sku": "b", "quantity": 2, "unit_amount": 500},
    ],
    "payment_method": "pm_card_visa",
}


@pytest.fixture
def api(
    database_url: str, simulator_server: ThreadedServer, simulator: Any
) -> Iterator[httpx.Client]:
    settings = Settings(database_url=database_url, **FAST)
    migrate(settings)
    container = build(settings, psp_url=simulator_server.url)
    container.start_projections()
    server = ThreadedServer(create_app(container)).start()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http
    server.stop()
    container.close()


def place(api: httpx.Client, **changes: Any) -> httpx.Response:
    return api.post(
        "/v1/checkouts", json=CART | changes, headers={"Idempotency-Key": str(uuid.uuid4())}
    )


def fresh(response: httpx.Response) -> dict[str, str]:
    return {"min_position": response.headers["Payments-Position"]}


def test_a_write_is_readable_at_its_position(api: httpx.Client) -> None:
    created = place(api)
    order = api.get(created.headers["Location"], params=fresh(created)).json()
    assert order == created.json()
    page = api.get("/v1/payment-orders", params=fresh(created)).json()
    assert [o["id"] for o in page["orders"]] == [order["id"]]


def test_a_position_past_the_log_is_refused(api: httpx.Client) -> None:
    response = api.get("/v1/payment-orders", params={"min_position": 10**9})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "min_position"


def test_lists_filter_by_status_and_buyer_and_page_with_a_cursor(api: httpx.Client) -> None:
    for n in range(5):
        place(api, buyer_id=f"buyer-{n % 2}")
    last = place(api, payment_method="pm_card_declined")
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2} | fresh(last)
    while True:
        page = api.get("/v1/payment-orders", params=params).json()
        seen += [o["id"] for o in page["orders"]]
        if not page["next_cursor"]:
            break
        params = {"limit": 2, "cursor": page["next_cursor"]}
    assert len(seen) == len(set(seen)) == 6
    declined = api.get("/v1/payment-orders", params={"status": "requires_payment_method"}).json()
    assert [o["id"] for o in declined["orders"]] == [last.json()["id"]]
    buyer = api.get("/v1/payment-orders", params={"buyer_id": "buyer-1"}).json()
    assert {o["buyer_id"] for o in buyer["orders"]} == {"buyer-1"}
    assert len(buyer["orders"]) == 3  # two of the five, and the declined one
    assert api.get("/v1/payment-orders", params={"cursor": "garbage"}).status_code == 422


def test_the_ledger_balances_and_lists_postings(api: httpx.Client) -> None:
    manual = place(api, capture_method="manual").json()
    api.post(f"/v1/payment-orders/{manual['id']}/capture", json={"amount": 1500})
    refund = api.post(f"/v1/payment-orders/{manual['id']}/refunds", json={"amount": 500})
    assert refund.status_code == 201
    api.get("/v1/payment-orders", params=fresh(refund))  # wait for the read models
    balances = api.get("/v1/ledger/balances").json()
    assert balances["totals"] == [{"currency": "EUR", "sum": 0}]
    accounts = {a["account"]: a["balance"] for a in balances["accounts"]}
    assert accounts["psp_receivable"] == 1000
    assert accounts["platform_revenue"] == -100
    assert accounts["seller_payable:s1"] + accounts["seller_payable:s2"] == -900
    entries = api.get("/v1/ledger/entries", params={"account": "psp_receivable", "limit": 1}).json()
    assert [e["amount"] for e in entries["entries"]] == [1500]
    rest = api.get(
        "/v1/ledger/entries", params={"account": "psp_receivable", "cursor": entries["next_cursor"]}
    )
    assert [e["amount"] for e in rest.json()["entries"]] == [-500]


def test_the_dashboard_counts_failures_and_attempts(api: httpx.Client) -> None:
    declined = place(api, payment_method="pm_card_declined")
    api.get("/v1/payment-orders", params=fresh(declined))
    board = api.get("/v1/dashboard/failures").json()
    assert {"code": "card_declined", "count": 1} in board["failures_by_code"]
    assert {"status": "declined", "count": 1} in board["attempts_by_status"]
    assert board["failures_by_hour"][0]["count"] == 1


def test_metrics_count_psp_outcomes(api: httpx.Client) -> None:
    place(api)
    place(api, payment_method="pm_card_declined")
    text = api.get("/metrics").text
    assert 'payments_psp_calls_total{operation="authorize",outcome="captured"} 1.0' in text
    assert 'payments_psp_calls_total{operation="authorize",outcome="declined"} 1.0' in text
    assert "payments_manual_review_orders 0.0" in text
