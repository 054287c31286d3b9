"""The read baseline: a bare FastAPI GET returning an order-sized JSON document from memory,
served with the same uvicorn settings as the API. The handler is `async def`, FastAPI's
fastest plain path (a `def` handler would add a thread-pool hop per request)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

DOCUMENT: dict[str, Any] = {
    "id": "2c0b4b8e-5d2f-5c1e-9f3a-3b1e2d4c5f6a",
    "status": "succeeded",
    "buyer_id": "buyer-bench",
    "currency": "EUR",
    "amount": 3299,
    "capture_method": "automatic",
    "items": [
        {"seller_id": "seller-a", "sku": "mug", "quantity": 2, "unit_amount": 1250, "amount": 2500},
        {"seller_id": "seller-b", "sku": "tea", "quantity": 1, "unit_amount": 799, "amount": 799},
    ],
    "splits": [
        {"seller_id": "seller-a", "amount": 2500, "platform_fee": 250, "payout": 2250},
        {"seller_id": "seller-b", "amount": 799, "platform_fee": 80, "payout": 719},
    ],
    "attempts": [
        {
            "number": 1,
            "status": "captured",
            "payment_method": "pm_card_visa",
            "psp_reference": "pay_5bc9e2f5b4f993a6da7bb0f8",
            "failure_code": None,
            "failure_message": None,
        }
    ],
    "captured_amount": 3299,
    "refunded_amount": 0,
    "expires_at": "2026-11-23T23:44:43.190165+00:00",
    "created_at": "2026-11-23T23:14:43.190563+00:00",
    "updated_at": "2026-11-23T23:14:43.204585+00:00",
    "version": 3,
}


def create() -> FastAPI:
    """uvicorn factory (`bench.bare_app:create`)."""
    app = FastAPI()

    @app.get("/v1/payment-orders/{order_id}")
    async def order(order_id: str) -> dict[str, Any]:
        return DOCUMENT

    return app
