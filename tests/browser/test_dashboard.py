"""The operators' dashboard in a real browser: sign-in, failures, stuck orders, the audit
trail, and resolving a manual review."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from api.auth import client_id_for
from api.main import create_app
from api.threaded_server import ThreadedServer
from bootstrap.composition import build
from bootstrap.migrate import migrate
from bootstrap.settings import Settings
from tests.browser.conftest import (
    CHECKOUT_KEY,
    DESKTOP,
    OPS_KEY,
    checkout,
    projected,
    reload_until,
    screenshot,
    sign_in,
)
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.browser


def test_sign_in_takes_the_key_in_the_body_and_keeps_it_out_of_urls(
    stack: Stack, sim: httpx.Client, page: Page
) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.on("framenavigated", lambda frame: urls.append(frame.url))
    page.goto("/dashboard")
    expect(page).to_have_url(f"{stack.api.base_url}/dashboard/sign-in")
    screenshot(page, "sign-in")

    for wrong in ("not-the-right-key", CHECKOUT_KEY):  # a checkout key is no operator key
        sign_in(page, wrong)
        expect(page.get_by_role("alert")).to_contain_text("That key is not an operator key")
        expect(page.get_by_role("heading", name="Payments dashboard")).to_have_count(0)
    screenshot(page, "sign-in-rejected")

    sign_in(page)
    expect(page.get_by_role("heading", name="Payments dashboard", level=1)).to_be_visible()
    expect(page).to_have_url(f"{stack.api.base_url}/dashboard")
    [cookie] = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"
    assert OPS_KEY not in cookie["value"] and CHECKOUT_KEY not in cookie["value"]
    assert page.url == f"{stack.api.base_url}/dashboard"
    assert not [url for url in urls if OPS_KEY in url or CHECKOUT_KEY in url]
    for bad, status in (("/dashboard?stuck_after_s=soon", 400), ("/dashboard/orders/x", 404)):
        response = page.goto(bad)
        assert response is not None and response.status == status
        assert "text/html" in response.headers["content-type"]
    page.goto("/dashboard")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{stack.api.base_url}/dashboard/sign-in")
    page.goto("/dashboard")
    expect(page).to_have_url(f"{stack.api.base_url}/dashboard/sign-in")


def test_the_dashboard_shows_a_decline_and_a_stuck_order(
    stack: Stack, sim: httpx.Client, page: Page
) -> None:
    declined = checkout(stack, "pm_card_declined")
    projected(stack, declined)
    stack.faults(script=["timeout"] * 20, hang_ms=3000, webhook_events="none")
    stuck = checkout(stack, "pm_card_visa").json()
    assert stuck["status"] == "processing"
    sign_in(page)
    page.goto("/dashboard?stuck_after_s=0.3")
    reload_until(page, lambda: stuck["id"] in page.locator("#stuck").inner_text())
    failures = page.locator("#failures-by-code")
    expect(failures).to_contain_text("card_declined")
    expect(failures).to_contain_text("Your bank declined the card.")
    expect(failures).to_contain_text("psp_timeout")
    expect(page.locator("#recent")).to_contain_text(declined.json()["id"])
    expect(page.locator("#failures-chart-title")).to_have_count(1)
    assert page.locator("figure.chart rect").count() > 0
    screenshot(page, "dashboard")

    page.locator("#stuck").get_by_role("link", name=stuck["id"]).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(stuck["id"])
    events = page.locator("#events")
    expect(events).to_contain_text("AuthorizationRequested")
    expect(events).to_contain_text("PSPTimedOut")
    expect(events).to_contain_text("outcome unknown")
    screenshot(page, "order-audit")


def test_the_dashboard_counts_bank_challenges_and_lists_holds_about_to_lapse(
    stack: Stack, sim: httpx.Client, page: Page
) -> None:
    stack.faults(hold_lifetime_s=3600)
    pending = checkout(stack, "pm_card_threeDSecure2Required").json()
    for choice in ("complete", "fail"):
        challenged = checkout(stack, "pm_card_threeDSecure2Required").json()
        answered = httpx.post(f"{challenged['next_action']['url']}/{choice}")
        assert answered.status_code < 400
    held = checkout(stack, "pm_card_visa", capture_method="manual")
    assert held.json()["attempts"][0]["authorization_expires_at"]
    projected(stack, held)
    sign_in(page)
    page.goto("/dashboard")

    def counted(outcome: str) -> int:
        return int(page.locator(f"#challenges-{outcome}").inner_text())

    reload_until(page, lambda: counted("completed") >= 1 and counted("failed") >= 1)
    assert counted("pending") >= 1 and counted("required") >= 3
    expect(page.locator("#lapsing")).to_contain_text(held.json()["id"][:8])
    expect(page.locator("#challenges-chart-title")).to_have_count(1)
    screenshot(page, "dashboard-challenges")
    assert pending["status"] == "requires_action"


def test_the_dashboard_lists_open_disputes_by_evidence_deadline(
    stack: Stack, sim: httpx.Client, page: Page
) -> None:
    paid = checkout(stack, "pm_card_visa").json()
    payment = paid["attempts"][0]["psp_reference"]
    opened = sim.post(
        f"/_control/payments/{payment}/dispute", json={"reason": "product_not_received"}
    )
    dispute_id = opened.json()["id"]
    sign_in(page)
    page.goto("/dashboard")
    reload_until(page, lambda: dispute_id in page.locator("#disputes").inner_text())
    row = page.locator("#disputes tr", has_text=dispute_id)
    expect(row).to_contain_text("needs response")
    expect(row).to_contain_text("product_not_received")
    expect(row).to_contain_text("25.50 EUR")
    expect(row).to_contain_text("6 d")
    screenshot(page, "dashboard-disputes")
    sim.post(f"/_control/disputes/{dispute_id}/resolve", json={"outcome": "won"})
    reload_until(page, lambda: dispute_id not in page.locator("#disputes").inner_text())


def test_an_operator_resolves_a_reconciliation_break_from_the_dashboard(
    stack: Stack, sim: httpx.Client, page: Page
) -> None:
    sim.put("/_control/faults", json={"settlement_delay_s": 0, "settlement_batch_s": 1})
    checkout(stack, "pm_card_visa")
    unknown = sim.post("/_control/settlement/quirks", json={"kind": "unknown_payment"})
    time.sleep(1.3)  # the batch closes
    assert stack.run("reconcile").returncode == 1  # an open break
    sign_in(page)
    page.goto("/dashboard")
    expect(page.locator("#reconciliation-summary")).to_contain_text("rows matched")
    expect(page.locator("#breaks-unexplained")).to_have_text("1")
    queue = page.locator("article", has_text=unknown.json()["reference"])
    expect(queue).to_contain_text("unknown payment")
    screenshot(page, "dashboard-reconciliation")
    queue.get_by_label("What you found").select_option("written_off")
    queue.get_by_label("Note (required)").fill("a test charge made by hand at the PSP")
    queue.get_by_role("button", name="Resolve").click()
    expect(page.locator("#breaks-empty")).to_be_visible()
    expect(page.locator("#breaks-unexplained")).to_have_text("0")
    assert stack.run("reconcile").returncode == 0
    [resolved] = [
        b
        for b in stack.api.get(
            "/v1/reconciliation/breaks",
            params={"status": "resolved"},
            headers={"Authorization": f"Bearer {OPS_KEY}"},
        ).json()["breaks"]
        if b["kind"] == "unknown_payment"
    ]
    assert resolved["resolution"] == "written_off" and resolved["operator"]


def test_an_operator_resolves_a_manual_review_from_the_dashboard(
    stack: Stack, sim: httpx.Client, page: Page
) -> None:
    stack.faults(amount_mismatch_rate=1.0)
    placed = checkout(stack, "pm_card_visa")
    order = placed.json()
    assert order["status"] == "needs_review"
    projected(stack, placed)
    sign_in(page)
    page.goto("/dashboard")
    card = page.locator("article.review").filter(has_text=order["id"])
    reload_until(page, lambda: card.count() == 1)
    expect(card).to_contain_text("amount_mismatch")
    screenshot(page, "dashboard-review")

    forged = page.request.post(
        f"/dashboard/orders/{order['id']}/resolve",
        form={"outcome": "captured", "note": "forged", "csrf": "0" * 64},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "ManuallyResolved" not in [e["type"] for e in stack.events(order["id"])]

    card.get_by_label("Outcome at the PSP").select_option("captured")
    card.get_by_label("Note (required)").fill("Checked the PSP dashboard: charged once.")
    card.get_by_role("button", name="Resolve").click()
    expect(page.get_by_role("status")).to_contain_text("Your resolution was recorded")
    expect(page.locator("#events")).to_contain_text("ManuallyResolved")
    screenshot(page, "order-resolved")
    [resolved] = [e for e in stack.events(order["id"]) if e["type"] == "ManuallyResolved"]
    assert resolved["data"]["operator"] == client_id_for(OPS_KEY)
    assert resolved["data"]["note"] == "Checked the PSP dashboard: charged once."
    assert resolved["data"]["outcome"] == "captured"


@pytest.fixture
def development_app(tmp_path: Path, simulator_server: ThreadedServer) -> Iterator[str]:
    """An in-process API without API keys (development mode)."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/dev.db", api_keys="")
    migrate(settings)
    container = build(settings, psp_url=simulator_server.url)
    server = ThreadedServer(create_app(container)).start()
    yield server.url
    server.stop()
    container.close()


def test_development_mode_needs_no_sign_in(browser: Browser, development_app: str) -> None:
    context = browser.new_context(base_url=development_app, viewport=DESKTOP)
    page = context.new_page()
    page.goto("/dashboard/sign-in")
    expect(page).to_have_url(f"{development_app}/dashboard")
    expect(page.get_by_text("Development mode: sign-in is off")).to_be_visible()
    screenshot(page, "dashboard-development")
    context.close()
