"""The pay-in core end to end: real `payments serve` and `payments psp-sim` processes."""

from __future__ import annotations

import concurrent.futures
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

CART: dict[str, Any] = {
    "buyer_id": "buyer-42",
    "currency": "EUR",
    "items": [
        {"seller_id": "seller-a", "sku": "mug", "quantity": 2, "unit_amount": 1000},
        {"seller_id": "seller-b", "sku": "tea", "quantity": 1, "unit_amount": 550},
    ],
    "payment_method": "pm_card_visa",
}


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


def test_happy_path_with_two_sellers(stack: Stack, sim: httpx.Client) -> None:
    response = stack.api.post("/v1/checkouts", json=CART, headers=key())
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "succeeded" and order["amount"] == 2550
    assert order["splits"] == [
        {"seller_id": "seller-a", "amount": 2000, "platform_fee": 200, "payout": 1800},
        {"seller_id": "seller-b", "amount": 550, "platform_fee": 55, "payout": 495},
    ]
    assert order["attempts"][0]["status"] == "captured"
    fresh = {"min_position": response.headers["Payments-Position"]}
    assert stack.api.get(response.headers["Location"], params=fresh).json() == order
    events = stack.api.get(f"{response.headers['Location']}/events").json()["events"]
    assert [e["type"] for e in events] == ["Placed", "AuthorizationRequested", "Captured"]
    assert [e["version"] for e in events] == [1, 2, 3]
    [payment] = stack.charges()
    assert (payment["reference"], payment["amount"], payment["status"]) == (
        order["id"],
        2550,
        "captured",
    )


def test_a_replay_answers_200_with_the_same_order_and_one_charge(
    stack: Stack, sim: httpx.Client
) -> None:
    headers = key()
    first = stack.api.post("/v1/checkouts", json=CART, headers=headers)
    again = stack.api.post("/v1/checkouts", json=CART, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert len(stack.charges()) == 1


def test_a_key_reused_with_another_body_is_422_and_changes_nothing(
    stack: Stack, sim: httpx.Client
) -> None:
    headers = key()
    stack.api.post("/v1/checkouts", json=CART, headers=headers)
    recorded = stack.events_recorded()
    other = CART | {"buyer_id": "someone-else"}
    body = problem(stack.api.post("/v1/checkouts", json=other, headers=headers), 422)
    assert body["errors"][0]["field"] == "Idempotency-Key"
    assert stack.events_recorded() == recorded
    assert len(stack.charges()) == 1


def test_a_missing_key_is_400(stack: Stack, sim: httpx.Client) -> None:
    recorded = stack.events_recorded()
    body = problem(stack.api.post("/v1/checkouts", json=CART), 400)
    assert body["errors"][0]["field"] == "Idempotency-Key"
    assert stack.events_recorded() == recorded and stack.charges() == []


def test_twenty_concurrent_requests_with_one_key_make_one_order_and_one_charge(
    stack: Stack, sim: httpx.Client
) -> None:
    headers = key()

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=str(stack.api.base_url), timeout=30) as client:
            return client.post("/v1/checkouts", json=CART, headers=headers)

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(post, range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201, 409}
    answered = [r.json() for r in responses if r.status_code in (200, 201)]
    assert len({o["id"] for o in answered}) == 1
    charges = stack.charges()
    assert len(charges) == 1 and charges[0]["reference"] == answered[0]["id"]


def test_decline_then_a_new_attempt_with_another_card(stack: Stack, sim: httpx.Client) -> None:
    declined = stack.api.post(
        "/v1/checkouts", json=CART | {"payment_method": "pm_card_declined"}, headers=key()
    )
    order = declined.json()
    assert order["status"] == "requires_payment_method"
    assert order["attempts"][0]["failure_code"] == "card_declined"
    retry_key = key()
    url = f"/v1/payment-orders/{order['id']}/attempts"
    retried = stack.api.post(url, json={"payment_method": "pm_card_visa"}, headers=retry_key)
    assert retried.status_code == 201 and retried.json()["status"] == "succeeded"
    replay = stack.api.post(url, json={"payment_method": "pm_card_visa"}, headers=retry_key)
    assert replay.status_code == 200 and len(replay.json()["attempts"]) == 2
    held = [p for p in stack.charges() if p["status"] != "declined"]
    assert len(held) == 1 and held[0]["reference"] == order["id"]


def test_time_travel_rebuilds_the_order_at_each_version(stack: Stack, sim: httpx.Client) -> None:
    placed = stack.api.post("/v1/checkouts", json=CART, headers=key())
    location = placed.headers["Location"]
    last = stack.wait_for(placed.json()["id"], lambda o: o["status"] == "succeeded")["version"]
    # Placed, AuthorizationRequested, Captured; a PSP slow under load adds a timeout and an
    # inquiry in between, which the versions show as they happened.
    versions = range(1, last + 1)
    statuses = [stack.api.get(location, params={"version": v}).json()["status"] for v in versions]
    assert statuses[:2] == ["processing", "processing"] and statuses[-1] == "succeeded"
    assert set(statuses[2:-1]) <= {"processing"} and last >= 3
    problem(stack.api.get(location, params={"version": last + 1}), 404)
    problem(stack.api.get(location, params={"version": 0}), 422)


CARD = "4242 4242 4242 4242"
BAD_INPUTS: list[tuple[str, Any, int, str]] = [
    ("no buyer", {k: v for k, v in CART.items() if k != "buyer_id"}, 422, "buyer_id"),
    ("no items", CART | {"items": []}, 422, "items"),
    (
        "zero quantity",
        CART | {"items": [CART["items"][0] | {"quantity": 0}]},
        422,
        "items[0].quantity",
    ),
    (
        "float amount",
        CART | {"items": [CART["items"][0] | {"unit_amount": 10.5}]},
        422,
        "items[0].unit_amount",
    ),
    (
        "string amount",
        CART | {"items": [CART["items"][0] | {"unit_amount": "1000"}]},
        422,
        "items[0].unit_amount",
    ),
    (
        "boolean amount",
        CART | {"items": [CART["items"][0] | {"unit_amount": True}]},
        422,
        "items[0].unit_amount",
    ),
    (
        "negative amount",
        CART | {"items": [CART["items"][0] | {"unit_amount": -5}]},
        422,
        "items[0].unit_amount",
    ),
    (
        "huge total",
        CART | {"items": [CART["items"][0] | {"quantity": 10_000, "unit_amount": 10**12}]},
        422,
        "items",
    ),
    ("too many items", CART | {"items": [CART["items"][0]] * 101}, 422, "items"),
    ("lowercase currency", CART | {"currency": "eur"}, 422, "currency"),
    ("unknown currency", CART | {"currency": "ABC"}, 422, "currency"),
    ("a card number", CART | {"payment_method": CARD}, 422, "payment_method"),
    (
        "a card number in a token",
        CART | {"payment_method": "pm_4242424242424242"},
        422,
        "payment_method",
    ),
    ("not a token", CART | {"payment_method": "visa"}, 422, "payment_method"),
    ("bad capture method", CART | {"capture_method": "later"}, 422, "capture_method"),
    ("an unknown field", CART | {"card_number": CARD}, 422, "card_number"),
    (
        "a seller id with spaces",
        CART | {"items": [CART["items"][0] | {"seller_id": "a b"}]},
        422,
        "items[0].seller_id",
    ),
    ("a list, not an object", [CART], 422, "body"),
    ("malformed JSON", b'{"buyer_id": ', 400, "body"),
    ("too large", b'{"pad": "' + b"x" * 70_000 + b'"}', 413, ""),
]


@pytest.mark.parametrize(
    ("body", "status", "field"), [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_is_a_clear_4xx_and_changes_nothing(
    stack: Stack, sim: httpx.Client, body: Any, status: int, field: str
) -> None:
    recorded = stack.events_recorded()
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = key() | {"Content-Type": "application/json"}
    response = stack.api.post("/v1/checkouts", content=content, headers=headers)
    answer = problem(response, status)
    if field:
        assert field in {e["field"] for e in answer["errors"]}
    assert "4242" not in response.text, "a card number was echoed back"
    assert stack.events_recorded() == recorded
    assert stack.charges() == []


@pytest.mark.parametrize("value", ["", "x" * 256, "ключ"])
def test_a_bad_idempotency_key_is_400(stack: Stack, sim: httpx.Client, value: str) -> None:
    response = stack.api.post(
        "/v1/checkouts", json=CART, headers=[(b"Idempotency-Key", value.encode())]
    )
    assert problem(response, 400)["errors"][0]["field"] == "Idempotency-Key"
    assert stack.charges() == []


def test_unknown_and_malformed_order_ids(stack: Stack, sim: httpx.Client) -> None:
    problem(stack.api.get(f"/v1/payment-orders/{uuid.uuid4()}"), 404)
    assert (
        problem(stack.api.get("/v1/payment-orders/not-a-uuid"), 422)["errors"][0]["field"]
        == "order_id"
    )
