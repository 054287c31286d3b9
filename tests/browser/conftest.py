"""Browser fixtures: headless Chromium (Playwright) against real `payments serve` and
`payments psp-sim` processes (tests/e2e's stack), once per store, with API keys configured.

Chromium comes from the system (`PAYMENTS_TEST_CHROMIUM`, default /usr/bin/chromium): Playwright's
own browser download is not used. Screenshots go to tests/browser/screenshots/ (git-ignored).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from tests.e2e.conftest import STORES, Stack, start_stack, stop_stack

CHECKOUT_KEY = "checkout-key-browser-tests"
OPS_KEY = "ops-key-browser-tests-0001"
SCREENSHOTS = Path(__file__).parent / "screenshots"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 375, "height": 812}
CART: dict[str, Any] = {
    "buyer_id": "buyer-42",
    "currency": "EUR",
    "items": [
        {"seller_id": "seller-a", "sku": "mug", "quantity": 2, "unit_amount": 1000},
        {"seller_id": "seller-b", "sku": "green-tea", "quantity": 1, "unit_amount": 550},
    ],
}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session."""
    executable = os.environ.get("PAYMENTS_TEST_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session", params=STORES)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """API + simulator with a checkout key and an ops key; slow retries keep a stuck order
    stuck for several seconds."""
    started = start_stack(
        request,
        tmp_path_factory.mktemp("browser"),
        request.param,
        api_keys=f"checkout:{CHECKOUT_KEY},ops:{OPS_KEY}",
        max_attempts="10",
        retry_base_s="0.5",
        retry_max_s="1",
        access_log="true",  # on, to prove capability tokens never reach it
    )
    started.api.headers["Authorization"] = f"Bearer {CHECKOUT_KEY}"
    yield started
    stop_stack(started)


@pytest.fixture
def sim(stack: Stack) -> httpx.Client:
    """The simulator's control API, reset before each test."""
    stack.simulator.post("/_control/reset").raise_for_status()
    return stack.simulator


@pytest.fixture
def page(browser: Browser, stack: Stack, sim: httpx.Client) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the stack's API, at desktop width."""
    context = browser.new_context(base_url=str(stack.api.base_url), viewport=DESKTOP)
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> None:
    """Full-page screenshots at desktop and phone (375 px) width."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def checkout(stack: Stack, payment_method: str, **changes: Any) -> httpx.Response:
    """Place a checkout with a fresh Idempotency-Key."""
    response = stack.api.post(
        "/v1/checkouts",
        json=CART | {"payment_method": payment_method} | changes,
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text
    return response


def projected(stack: Stack, response: httpx.Response) -> None:
    """Wait until the read models hold what `response` wrote."""
    position = response.headers["Payments-Position"]
    stack.api.get("/v1/payment-orders", params={"min_position": position}).raise_for_status()


def event_types(stack: Stack, order_id: str) -> list[str]:
    """The order's audit trail, by event type (straight from the event store)."""
    return [event["type"] for event in stack.events(order_id)]


def status_url(stack: Stack, order_id: str) -> str:
    """The buyer's link, as a merchant gets it."""
    response = stack.api.get(f"/v1/payment-orders/{order_id}/status-link")
    assert response.status_code == 200, response.text
    url: str = response.json()["status_url"]
    return url


def sign_in(page: Page, key: str = OPS_KEY) -> None:
    """Sign in through the form."""
    page.goto("/dashboard/sign-in")
    page.get_by_label("Operator API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def reload_until(page: Page, ready: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Reload the page until `ready()` (the dashboard reads projections, which lag a little)."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert time.monotonic() < deadline, f"{page.url} never showed what was expected"
        time.sleep(0.2)
        page.reload()
