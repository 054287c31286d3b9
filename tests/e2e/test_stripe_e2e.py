"""DESIGN.md's failure scenarios 3-6 and 8 through Stripe: `payments serve` (PAYMENTS_PSP=stripe)
-> `payments psp-proxy` (our fault engine) -> localstripe, as real processes on loopback.

Each fault is aimed at the PaymentIntent's create and at its confirm. The proof is
localstripe's own list of PaymentIntents: whatever happened, an order never has two that
took money, and the one it has is the one the order recorded.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import stripe

from api.auth import DEV_CLIENT
from chaos.localstripe import LocalStripe
from chaos.processes import Process, api_server, base_env, free_port, run_payments
from domain.ids import order_id_for
from tests.conftest import new_store_url
from tests.e2e.conftest import FAST

pytestmark = pytest.mark.e2e
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

    def checkout(self, key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": key or str(uuid.uuid4())}
        answer = self.api.post("/v1/checkouts", json=CART, headers=headers)
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

    def intents(self, order_id: str) -> list[dict[str, Any]]:
        """localstripe's own PaymentIntents for an order."""
        listing = self.stripe.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
        found = [i.to_dict() for i in listing]
        return [i for i in found if (i.get("metadata") or {}).get("order_id") == order_id]

    def charged_once(self, order: dict[str, Any]) -> None:
        took = [i for i in self.intents(order["id"]) if i["status"] in TOOK_MONEY]
        assert [i["id"] for i in took] == [order["attempts"][-1]["psp_reference"]], took


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    localstripe: LocalStripe,
) -> Iterator[StripeStack]:
    proxy_port, api_port = free_port(), free_port()
    proxy = Process(
        "psp-proxy",
        ["psp-proxy", "--upstream", localstripe.url, "--port", str(proxy_port)],
        base_env(),
        health_url=f"http://127.0.0.1:{proxy_port}/healthz",
    ).start()
    settings = FAST | {
        "database_url": new_store_url(request, "sqlite", tmp_path_factory.mktemp("stripe")),
        "psp": "stripe",
        "stripe_secret_key": STRIPE_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": f"http://127.0.0.1:{proxy_port}",
    }
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


@pytest.mark.parametrize("step", ["create", "confirm"])
@pytest.mark.parametrize("fault", ["timeout", "lost_response", "error_after", "error_before"])
def test_a_fault_on_either_step_ends_in_one_charge(
    stack: StripeStack, fault: str, step: str
) -> None:
    stack.faults(*(["none", fault] if step == "confirm" else [fault]))
    order = stack.checkout()
    order = stack.wait_for(order["id"], "succeeded")
    stack.charged_once(order)


def test_a_429_with_retry_after_is_honoured_and_charges_once(stack: StripeStack) -> None:
    stack.faults("none", "rate_limit", retry_after_s=1)
    order = stack.checkout()
    order = stack.wait_for(order["id"], "succeeded")
    stack.charged_once(order)
    events = [
        e["type"]
        for e in stack.api.get(f"/v1/payment-orders/{order['id']}/events").json()["events"]
    ]
    assert "RetryScheduled" in events


@pytest.mark.parametrize("failpoint", ["before_psp_call", "after_psp_call"])
def test_a_crash_after_the_write_ahead_event_is_finished_by_the_worker(
    stack: StripeStack, failpoint: str
) -> None:
    stack.faults()
    api = stack.processes["api"]
    api.stop()
    api.env["PAYMENTS_FAILPOINTS"] = failpoint
    api.start()
    key = str(uuid.uuid4())
    with pytest.raises(httpx.HTTPError):
        stack.checkout(key)  # the process kills itself at the failpoint
    api.stop()
    api.env.pop("PAYMENTS_FAILPOINTS")
    api.start()
    order_id = str(order_id_for(DEV_CLIENT, key))
    order = stack.wait_for(order_id, "succeeded", timeout_s=40)
    stack.charged_once(order)
