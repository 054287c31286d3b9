"""The workload: merchants' backends driving checkouts through the storm.

A client behaves as a careful integrator should: every command carries an Idempotency-Key,
and on a connection error, a 409 (in flight) or a 503 it retries with the same key after
a pause. Every response status is kept, with its time, for the 5xx invariant.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

CART_ITEMS = [
    {"seller_id": "seller-a", "sku": "mug", "quantity": 2, "unit_amount": 1250},
    {"seller_id": "seller-b", "sku": "tea", "quantity": 1, "unit_amount": 799},
]
RETRYABLE = {409, 503}


@dataclass
class Outcome:
    """What one client saw while driving one order."""

    intent: str
    key: str
    order_id: str | None = None
    duplicate_ids: set[str] = field(default_factory=set)


@dataclass
class Responses:
    """Every status the clients received, with when (monotonic seconds)."""

    seen: list[tuple[float, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, problem_type: str) -> None:
        with self.lock:
            self.seen.append((time.monotonic(), status, problem_type))


class Client:
    """A merchant backend talking to the API."""

    def __init__(self, base_url: str, responses: Responses, give_up_s: float = 60.0) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.responses = responses
        self.give_up_s = give_up_s

    def send(
        self, method: str, path: str, key: str | None = None, body: Any = None
    ) -> httpx.Response | None:
        """The request, retried with the same key until it gets a definite answer."""
        headers = {"Idempotency-Key": key} if key else {}
        deadline = time.monotonic() + self.give_up_s
        pause = 0.1
        while time.monotonic() < deadline:
            try:
                response = self.http.request(method, path, json=body, headers=headers)
            except httpx.TransportError:
                response = None
            if response is not None:
                problem = response.json().get("type", "") if response.status_code >= 400 else ""
                self.responses.add(response.status_code, problem)
                if response.status_code not in RETRYABLE:
                    return response
            time.sleep(pause)
            pause = min(2.0, pause * 2)
        return None

    def order(self, order_id: str) -> dict[str, Any] | None:
        response = self.send("GET", f"/v1/payment-orders/{order_id}")
        return response.json() if response is not None and response.status_code == 200 else None

    def await_status(
        self, order_id: str, wanted: set[str], timeout_s: float = 30.0
    ) -> dict[str, Any] | None:
        """Poll until the order reaches one of `wanted` (None if it settles elsewhere)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            order = self.order(order_id)
            if order and order["status"] in wanted:
                return order
            if order and order["status"] not in ("processing", "requires_action"):
                return None
            time.sleep(0.3)
        return None


def checkout(client: Client, key: str, **changes: Any) -> str | None:
    body = {
        "buyer_id": "buyer-chaos",
        "currency": "EUR",
        "items": CART_ITEMS,
        "payment_method": "pm_card_visa",
    } | changes
    response = client.send("POST", "/v1/checkouts", key, body)
    if response is None or response.status_code not in (200, 201):
        return None
    order_id: str = response.json()["id"]
    return order_id


CHALLENGED = "pm_card_threeDSecure2Required"
SIMULATOR_TOKENS = {
    "decline_then_retry": "pm_card_declined",
    "abandon": "pm_card_declined",
    "processing": "pm_card_processing",
    "challenge_complete": CHALLENGED,
    "challenge_fail": CHALLENGED,
    "challenge_abandon": CHALLENGED,
    "challenge_late": CHALLENGED,
}
"""The payment method each story checks out with (others: pm_card_visa), per PSP."""


def drive(
    client: Client, intent: str, rng: random.Random, tokens: dict[str, str] = SIMULATOR_TOKENS
) -> Outcome:
    """Play one buyer's story to its end (or until the order settles elsewhere)."""
    outcome = Outcome(intent, str(uuid.uuid4()))
    if intent == "duplicate":
        return _duplicates(client, outcome)
    token = tokens.get(intent, "pm_card_visa")
    capture = "manual" if intent in ("manual_capture", "manual_cancel") else "automatic"
    outcome.order_id = checkout(client, outcome.key, payment_method=token, capture_method=capture)
    if outcome.order_id:
        _follow_up(client, intent, outcome.order_id, rng)
    return outcome


def _follow_up(client: Client, intent: str, order_id: str, rng: random.Random) -> None:
    base = f"/v1/payment-orders/{order_id}"
    key = str(uuid.uuid4())
    if intent == "decline_then_retry" and client.await_status(
        order_id, {"requires_payment_method"}
    ):
        client.send("POST", f"{base}/attempts", key, {"payment_method": "pm_card_visa"})
    elif intent == "manual_capture" and client.await_status(order_id, {"authorized"}):
        amount = rng.choice([None, 1000, 3299])
        client.send("POST", f"{base}/capture", key, {"amount": amount} if amount else None)
    elif intent == "manual_cancel" and client.await_status(order_id, {"authorized"}):
        client.send("POST", f"{base}/cancel", key)
    elif intent == "refund" and client.await_status(order_id, {"succeeded"}):
        client.send("POST", f"{base}/refunds", key, {"amount": rng.randint(1, 3299)})
    elif intent.startswith("challenge_"):
        _answer_challenge(client, intent, order_id)


def _answer_challenge(client: Client, intent: str, order_id: str) -> None:
    """A buyer at their bank's page: completes, fails (then pays with another card), walks
    away, or completes after the session ended (the order must not keep that money)."""
    order = client.await_status(order_id, {"requires_action"})
    if order is None or intent == "challenge_abandon":
        return
    url = order["next_action"]["url"]
    if intent == "challenge_late":
        client.await_status(order_id, {"expired"}, timeout_s=60)
    choice = "fail" if intent == "challenge_fail" else "complete"
    _press(client, f"{url}/{choice}")
    if intent == "challenge_fail" and client.await_status(order_id, {"requires_payment_method"}):
        key = str(uuid.uuid4())
        body = {"payment_method": "pm_card_visa"}
        client.send("POST", f"/v1/payment-orders/{order_id}/attempts", key, body)


def _press(client: Client, url: str) -> None:
    """Post the buyer's answer to the bank's page (an answer the bank no longer takes is
    a 4xx, and the end of it)."""
    for _ in range(5):
        try:
            client.http.post(url, follow_redirects=False)
            return
        except httpx.TransportError:
            time.sleep(0.5)


def _duplicates(client: Client, outcome: Outcome) -> Outcome:
    """The same checkout sent three times at once: one order, one charge."""
    with ThreadPoolExecutor(3) as pool:
        ids = list(pool.map(lambda _: checkout(client, outcome.key), range(3)))
    outcome.duplicate_ids = {i for i in ids if i}
    outcome.order_id = next(iter(outcome.duplicate_ids), None)
    return outcome


def run_workload(
    api_url: str,
    intents: tuple[str, ...],
    seed: int,
    span_s: float,
    concurrency: int = 8,
    tokens: dict[str, str] = SIMULATOR_TOKENS,
) -> tuple[list[Outcome], Responses]:
    """Drive every intent, starting them evenly over `span_s` seconds, `concurrency` at a time."""
    responses = Responses()
    clients = threading.local()
    start = time.monotonic()

    def one(job: tuple[int, str]) -> Outcome:
        if not hasattr(clients, "client"):
            clients.client = Client(api_url, responses)
        index, intent = job
        time.sleep(max(0.0, start + index * span_s / len(intents) - time.monotonic()))
        rng = random.Random(seed * 100_003 + index)  # noqa: S311
        return drive(clients.client, intent, rng, tokens)

    with ThreadPoolExecutor(concurrency) as pool:
        outcomes = list(pool.map(one, enumerate(intents)))
    return outcomes, responses
