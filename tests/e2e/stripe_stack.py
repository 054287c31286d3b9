"""A Stripe stack for e2e tests: `payments serve` (PAYMENTS_PSP=stripe) -> `payments
psp-proxy` (our fault engine) -> localstripe, as real processes on loopback."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import stripe

from chaos.localstripe import LocalStripe
from chaos.processes import Process, api_server, base_env, free_port, run_payments
from tests.conftest import new_store_url
from tests.e2e.conftest import FAST

STRIPE_KEY, WEBHOOK_SECRET = "sk_test_e2e", "whsec_e2e_secret"
CART = {
    "buyer_id": "buyer-1",
    "currency": "EUR",
    "items": [{"seller_id": "s1", "sku": "mug", "quantity": 2, "unit_amount": 1000}],
    "payment_method": "pm_card_visa",
}
TOOK_MONEY = {"requires_capture", "succeeded", "processing"}


@dataclass
class StripeStack:
    api: httpx.Client
    proxy: httpx.Client
    stripe: stripe.StripeClient
    settings: dict[str, str]
    processes: dict[str, Process]

    def faults(self, *script: str, **settings: Any) -> None:
        body = {"script": list(script), "hang_ms": 1500, **settings}
        self.proxy.put("/_control/faults", json=body).raise_for_status()

    def checkout(self, key: str | None = None, **changes: Any) -> dict[str, Any]:
        headers = {"Idempotency-Key": key or str(uuid.uuid4())}
        answer = self.api.post("/v1/checkouts", json=CART | changes, headers=headers)
        assert answer.status_code in (200, 201), answer.text
        body: dict[str, Any] = answer.json()
        return body

    def wait_for(self, order_id: str, status: str, timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        order: dict[str, Any] = {}
        while time.monotonic() < deadline:
            order = self.api.get(f"/v1/payment-orders/{order_id}").json()
            if order["status"] == status:
                return order
            time.sleep(0.1)
        raise AssertionError(f"order {order_id} stuck at {order.get('status')}")

    def wait_for_attempt(self, order_id: str, status: str, timeout_s: float = 30) -> None:
        self._wait(order_id, lambda o: o["attempts"][-1]["status"] == status, timeout_s)

    def wait_for_amount(
        self, order_id: str, field: str, amount: int, timeout_s: float = 30
    ) -> dict[str, Any]:
        return self._wait(order_id, lambda o: o[field] == amount, timeout_s)

    def _wait(self, order_id: str, done: Any, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        order: dict[str, Any] = {}
        while time.monotonic() < deadline:
            order = self.api.get(f"/v1/payment-orders/{order_id}").json()
            if done(order):
                return order
            time.sleep(0.1)
        raise AssertionError(f"order {order_id} never got there: {order}")

    def intents(self, order_id: str) -> list[dict[str, Any]]:
        """localstripe's own PaymentIntents for an order."""
        listing = self.stripe.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
        found = [i.to_dict() for i in listing]
        return [i for i in found if (i.get("metadata") or {}).get("order_id") == order_id]

    def charged_once(self, order: dict[str, Any]) -> None:
        took = [i for i in self.intents(order["id"]) if i["status"] in TOOK_MONEY]
        assert [i["id"] for i in took] == [order["attempts"][-1]["psp_reference"]], took


@contextmanager
def stripe_stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    localstripe: LocalStripe,
    **overrides: str,
) -> Iterator[StripeStack]:
    """`payments serve` (PAYMENTS_PSP=stripe) -> `payments psp-proxy` -> localstripe; the
    audit must pass when it stops."""
    proxy_port, api_port = free_port(), free_port()
    proxy = Process(
        "psp-proxy",
        ["psp-proxy", "--upstream", localstripe.url, "--port", str(proxy_port)],
        base_env(),
        health_url=f"http://127.0.0.1:{proxy_port}/healthz",
    ).start()
    settings = (
        FAST
        | {
            "database_url": new_store_url(request, "sqlite", tmp_path_factory.mktemp("stripe")),
            "psp": "stripe",
            "stripe_secret_key": STRIPE_KEY,
            "stripe_webhook_secret": WEBHOOK_SECRET,
            "stripe_api_base": f"http://127.0.0.1:{proxy_port}",
            "public_url": f"http://127.0.0.1:{api_port}",
        }
        | overrides
    )
    assert run_payments(settings, "migrate").returncode == 0
    api = api_server(api_port, **settings).start()
    localstripe.add_webhook(f"http://127.0.0.1:{api_port}/v1/webhooks/stripe", WEBHOOK_SECRET)
    client = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": localstripe.url})
    yield StripeStack(
        httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30),
        httpx.Client(base_url=f"http://127.0.0.1:{proxy_port}", timeout=30),
        client,
        settings,
        {"api": api, "psp-proxy": proxy},
    )
    localstripe.add_webhook("http://127.0.0.1:9/", WEBHOOK_SECRET)
    audit = run_payments(settings, "audit", "--json")
    for process in (api, proxy):
        process.stop()
    assert audit.returncode == 0, audit.stdout.decode()[-2000:]
