"""The dashboard's webhook endpoints in a real browser: a healthy receiver and one that always
answers 500 (disabled after a tiny give-up time), with their owner, status, backlog and times,
and never an endpoint's secret."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import client_id_for
from api.main import create_app
from api.threaded_server import ThreadedServer
from bootstrap.composition import Container, build
from bootstrap.migrate import migrate
from bootstrap.settings import Settings
from tests.browser.conftest import (
    CART,
    CHECKOUT_KEY,
    DESKTOP,
    OPS_KEY,
    PHONE,
    SCREENSHOTS,
    screenshot,
    sign_in,
)

pytestmark = pytest.mark.browser
JUST_NOW = re.compile(r"^\d+(\.\d)? s ago$")
QUICK: dict[str, Any] = {
    "psp_timeout_s": 5.0,  # the checkout's answer must come: a loaded CI machine took > 0.5 s
    "retry_base_s": 0.05,
    "retry_max_s": 0.2,
    "worker_interval_s": 0.05,
    "outbound_timeout_s": 0.5,
    "outbound_retry_base_s": 0.05,
    "outbound_retry_max_s": 0.2,
    "outbound_give_up_after_s": 0.3,  # the failing endpoint is disabled within a second
}


async def accept(_: Request) -> Response:
    return Response(status_code=204)


async def refuse(_: Request) -> Response:
    return Response(status_code=500)


@pytest.fixture
def receivers() -> Iterator[str]:
    """A marketplace's receivers on loopback: /ok answers 204, /broken always 500."""
    server = ThreadedServer(
        Starlette(
            routes=[
                Route("/ok", accept, methods=["POST"]),
                Route("/broken", refuse, methods=["POST"]),
            ]
        )
    ).start()
    yield server.url
    server.stop()


@dataclass
class Api:
    container: Container
    http: httpx.Client
    url: str


@pytest.fixture
def api(
    database_url: str, simulator_server: ThreadedServer, simulator: httpx.Client
) -> Iterator[Api]:
    """An in-process API with a checkout and an ops key, webhook endpoints allowed on
    loopback, and deliveries driven by the test (`container.outbound.run_once()`)."""
    settings = Settings(
        database_url=database_url,
        api_keys=f"checkout:{CHECKOUT_KEY},ops:{OPS_KEY}",
        webhook_secret="w" * 16,
        outbound_allow_private=True,
        **QUICK,
    )
    migrate(settings)
    container = build(settings, psp_url=simulator_server.url)
    server = ThreadedServer(create_app(container)).start()
    headers = {"Authorization": f"Bearer {CHECKOUT_KEY}"}
    with httpx.Client(base_url=server.url, timeout=10, headers=headers) as http:
        yield Api(container, http, server.url)
    server.stop()
    container.close()


@pytest.fixture
def ops_page(browser: Browser, api: Api) -> Iterator[Page]:
    context = browser.new_context(base_url=api.url, viewport=DESKTOP)
    opened = context.new_page()
    yield opened
    context.close()


def subscribe(api: Api, url: str) -> str:
    created = api.http.post("/v1/webhook-endpoints", json={"url": url, "events": ["*"]})
    assert created.status_code == 201, created.text
    secret: str = created.json()["secret"]
    assert secret.startswith("whsec_")
    return secret


def by_url(api: Api) -> dict[str, dict[str, object]]:
    """Each endpoint by URL, as the API lists it."""
    listed = api.http.get("/v1/webhook-endpoints").json()["data"]
    return {e["url"]: e for e in listed}


def pending(api: Api, url: str) -> int:
    [count] = api.container.db.one(
        "SELECT COUNT(*) FROM webhook_deliveries d JOIN webhook_endpoints e "
        "ON e.id = d.endpoint_id WHERE e.url = %s AND d.status = 'pending'",
        (url,),
    )[0]
    return int(count)


def deliver_until_the_broken_one_is_disabled(api: Api, ok: str, broken: str) -> None:
    deadline = time.monotonic() + 15
    api.container.runner.catch_up()
    while by_url(api)[broken]["status"] == "enabled" or pending(api, ok):
        assert time.monotonic() < deadline, "the broken endpoint was never disabled"
        api.container.outbound.run_once()
        api.container.runner.catch_up()
        time.sleep(0.05)


def test_the_dashboard_shows_a_healthy_and_a_disabled_webhook_endpoint(
    api: Api, receivers: str, ops_page: Page
) -> None:
    page = ops_page
    sign_in(page)
    expect(page.get_by_role("heading", name="Payments dashboard", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Webhook endpoints")).to_have_count(0)
    expect(page.locator("#webhooks-tile")).to_have_count(0)  # no endpoints, no tile

    ok, broken = f"{receivers}/ok", f"{receivers}/broken"
    secrets = [subscribe(api, ok), subscribe(api, broken)]
    placed = api.http.post(
        "/v1/checkouts",
        json=CART | {"payment_method": "pm_card_visa"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert placed.status_code == 201, placed.text
    assert placed.json()["status"] == "succeeded"  # two events: processing, succeeded
    deliver_until_the_broken_one_is_disabled(api, ok, broken)
    events = api.http.get("/v1/events").json()["data"]
    assert len(events) >= 2  # so the broken endpoint has a backlog behind the failed one
    assert pending(api, broken) == len(events) - 1

    page.goto("/dashboard")
    card = page.get_by_role("region", name="Webhook endpoints").first
    expect(card.get_by_role("heading", name="Webhook endpoints")).to_be_visible()
    rows = page.locator("#endpoints tbody tr")
    expect(rows).to_have_count(2)
    owner = client_id_for(CHECKOUT_KEY)

    healthy = rows.filter(has_text=ok)
    expect(healthy).to_have_class("tone-ok")
    expect(healthy.get_by_role("rowheader")).to_contain_text(ok)
    cells = healthy.get_by_role("cell")
    expect(cells.nth(0)).to_have_text("enabled")
    expect(cells.nth(1)).to_have_text(owner)
    expect(cells.nth(2)).to_have_text("0 pending")
    expect(cells.nth(3)).to_have_text(JUST_NOW)
    expect(cells.nth(4)).to_have_accessible_name("not failing")

    failing = rows.filter(has_text=broken)
    expect(failing).to_have_class("tone-bad")
    cells = failing.get_by_role("cell")
    expect(cells.nth(0).locator(".badge")).to_have_text("disabled")
    expect(cells.nth(0).locator(".badge")).to_have_class("badge tone-bad")
    expect(cells.nth(0)).to_contain_text(f"gave up on {events[0]['id']} after")
    expect(cells.nth(1)).to_have_text(owner)
    expect(cells.nth(2)).to_have_text(f"{len(events) - 1} pending")
    expect(cells.nth(3)).to_have_text("never")
    expect(cells.nth(4)).to_have_text(JUST_NOW)
    assert cells.nth(4).locator("time").get_attribute("datetime")

    tile = page.locator("#webhooks-tile")
    expect(tile).to_have_class("tile tone-bad")
    expect(tile.locator(".value")).to_have_text("1")
    expect(tile).to_contain_text("of 2 endpoints disabled or failing")

    html = page.content()
    assert "whsec_" not in html
    assert not [s for s in secrets if s in html or s.removeprefix("whsec_") in html]
    assert CHECKOUT_KEY not in html and OPS_KEY not in html

    page.set_viewport_size(PHONE)  # the table scrolls in its region; the page never does
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size(DESKTOP)
    screenshot(page, "dashboard-webhooks")
    for size, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page.set_viewport_size(size)
        card.screenshot(path=str(SCREENSHOTS / f"dashboard-webhooks-card-{name}.png"))
    page.set_viewport_size(DESKTOP)
