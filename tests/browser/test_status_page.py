"""The buyer's status page in a real browser: live updates, retry with another card, and the
capability token that keeps every other order out of reach."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from playwright.sync_api import Page, Request, ViewportSize, expect

from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    checkout,
    event_types,
    screenshot,
    status_url,
)
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.browser
PAID = "Payment received."
JSON = {"Content-Type": "application/json"}
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_the_page_turns_paid_by_itself_when_the_psp_answers_late(
    stack: Stack, sim: httpx.Client, page: Page
) -> None:
    stack.faults(webhook_delay_ms=1500, webhook_events="async")
    order = checkout(stack, "pm_card_processing").json()
    assert order["status"] == "processing"
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    link = status_url(stack, order["id"])
    page.goto(link)
    expect(page.get_by_role("status")).to_contain_text(
        "We are confirming your payment with your bank."
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Your payment of 25.50 EUR")
    expect(page.get_by_role("heading", name="Sold by seller-a")).to_be_visible()
    screenshot(page, "status-processing")
    expect(page.get_by_role("status")).to_contain_text(PAID, timeout=15_000)
    expect(page.locator("#timeline")).to_contain_text("Attempt 1: Paid")
    expect(page.get_by_text("This page checks for updates by itself.")).to_be_hidden()
    assert len(navigations) == 1  # updated in place, never reloaded
    screenshot(page, "status-paid")
    api_log = stack.processes["api"].log_path.read_text()
    assert "token=[redacted]" in api_log
    assert link.partition("token=")[2] not in api_log  # capability tokens stay out of logs


def test_a_declined_card_offers_a_retry_that_succeeds(
    stack: Stack, sim: httpx.Client, page: Page
) -> None:
    order = checkout(stack, "pm_card_declined").json()
    keys: list[str] = []
    page.on("request", lambda request: keys.extend(_idempotency_keys(request)))
    page.goto(status_url(stack, order["id"]))
    expect(page.get_by_role("status")).to_contain_text("Your card was declined — try another card.")
    expect(page.locator("#timeline")).to_contain_text("Your bank declined the card.")
    expect(page.get_by_role("heading", name="Try another card")).to_be_visible()
    screenshot(page, "status-declined")

    page.get_by_label("Payment method").fill("4242 4242 4242 4242")
    page.get_by_role("button", name="Pay 25.50 EUR").click()
    expect(page.get_by_role("alert")).to_contain_text("Card numbers are not accepted")
    assert event_types(stack, order["id"]).count("AuthorizationRequested") == 1
    screenshot(page, "status-card-number-refused")

    page.get_by_label("Payment method").fill("pm_card_visa")
    page.get_by_role("button", name="Pay 25.50 EUR").click()
    expect(page.get_by_role("status")).to_contain_text(PAID)
    expect(page.get_by_role("heading", name="Try another card")).to_be_hidden()
    expect(page.locator("#timeline li")).to_have_count(3)  # placed, declined, paid
    history = event_types(stack, order["id"])
    assert history.count("AuthorizationRequested") == 2
    assert history.index("Declined") < history.index("Captured")
    assert len(keys) == len(set(keys)) == 2  # a fresh Idempotency-Key per try
    assert all(UUID_TEXT.match(key) for key in keys)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_bank_challenge_takes_the_buyer_to_their_bank_and_back_to_a_paid_page(
    stack: Stack, sim: httpx.Client, page: Page, viewport: ViewportSize
) -> None:
    page.set_viewport_size(viewport)
    order = checkout(stack, "pm_card_threeDSecure2Required").json()
    assert order["status"] == "requires_action"
    link = status_url(stack, order["id"])
    page.goto(link)
    expect(page.get_by_role("status")).to_contain_text("Confirm with your bank.")
    confirm = page.get_by_role("link", name="Confirm with your bank")
    expect(confirm).to_be_visible()
    assert confirm.bounding_box() is not None
    assert (confirm.bounding_box() or {"width": 0})["width"] <= viewport["width"]
    expect(page.get_by_role("heading", name="Try another card")).to_be_hidden()
    screenshot(page, f"status-challenge-{viewport['width']}")
    confirm.click()
    expect(page).to_have_url(re.compile(r"/challenge/"))
    page.get_by_role("button", name="Complete").click()
    expect(page).to_have_url(re.compile(rf"/status/{order['id']}\?token="))
    expect(page.get_by_role("status")).to_contain_text(PAID, timeout=15_000)
    expect(confirm).to_be_hidden()
    history = event_types(stack, order["id"])
    assert history.index("ActionRequired") < history.index("Captured")


def test_a_failed_bank_challenge_comes_back_to_a_retry_form(
    stack: Stack, sim: httpx.Client, page: Page
) -> None:
    order = checkout(stack, "pm_card_threeDSecure2Required").json()
    page.goto(status_url(stack, order["id"]))
    page.get_by_role("link", name="Confirm with your bank").click()
    page.get_by_role("button", name="Fail").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Your card was declined — try another card.", timeout=15_000
    )
    expect(page.locator("#timeline")).to_contain_text("Your bank could not confirm that it was you")
    page.get_by_label("Payment method").fill("pm_card_visa")
    page.get_by_role("button", name="Pay 25.50 EUR").click()
    expect(page.get_by_role("status")).to_contain_text(PAID)


def _idempotency_keys(request: Request) -> list[str]:
    if request.method != "POST" or "/attempts" not in request.url:
        return []
    return [request.headers["idempotency-key"]]


def test_a_wrong_or_missing_token_is_not_found(stack: Stack, sim: httpx.Client, page: Page) -> None:
    mine = checkout(stack, "pm_card_declined").json()
    other = checkout(stack, "pm_card_visa", buyer_id="buyer-other").json()
    link = status_url(stack, mine["id"])
    token = link.partition("token=")[2]
    for url in (
        f"/status/{mine['id']}",
        f"/status/{mine['id']}?token={'0' * 64}",
        f"/status/{other['id']}?token={token}",  # one order's token never opens another
        f"/status/{uuid.uuid4()}?token={token}",
        "/status/not-an-order?token=x",
    ):
        response = page.goto(url)
        assert response is not None
        assert response.status == 404, url
        expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    screenshot(page, "status-not-found")
    assert "buyer-other" not in page.content() and "seller-a" not in page.content()


def test_the_buyer_endpoints_answer_problems_never_500(stack: Stack, sim: httpx.Client) -> None:
    order = checkout(stack, "pm_card_declined").json()
    link = status_url(stack, order["id"])
    path, _, query = link.partition("?")
    attempts = f"{path}/attempts?{query}"
    buyer = httpx.Client(base_url=stack.api.base_url, timeout=30)  # no API key
    key = {"Idempotency-Key": str(uuid.uuid4())}
    cases = [
        (buyer.get(f"{path}/state?token=bad"), 404),
        (
            buyer.post(f"{path}/attempts?token=bad", json={"payment_method": "pm_x"}, headers=key),
            404,
        ),
        (buyer.post(attempts, json={"payment_method": "pm_card_visa"}), 400),  # no key
        (buyer.post(attempts, content=b"{not json", headers=key | JSON), 400),
        (buyer.post(attempts, json={"payment_method": "4242424242424242"}, headers=key), 422),
        (buyer.post(attempts, json={"card": "pm_card_visa"}, headers=key), 422),
        (buyer.get(f"/v1/payment-orders/{order['id']}/status-link"), 401),
    ]
    for response, expected in cases:
        assert response.status_code == expected, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "4242424242424242" not in response.text
    state = buyer.get(f"{path}/state?{query}")
    assert state.json()["status"] == "requires_payment_method"
    assert event_types(stack, order["id"]).count("AuthorizationRequested") == 1
