"""Stores with a few real checkouts in them, for the bench's tests."""

from __future__ import annotations

from bootstrap.composition import build
from bootstrap.migrate import migrate
from bootstrap.settings import Settings
from domain.cart import Checkout, LineItem


def with_checkouts(settings: Settings, psp_url: str, count: int) -> None:
    """Migrate the store, then place `count` paid checkouts through the simulator."""
    migrate(settings)
    container = build(settings, psp_url=psp_url)
    try:
        items = (LineItem("seller-a", "mug", 2, 1000),)
        for n in range(count):
            container.app.place_checkout(
                Checkout("buyer-1", "EUR", items, "pm_card_visa", "automatic"),
                client_id="c1",
                idempotency_key=f"k{n}",
            )
    finally:
        container.close()
