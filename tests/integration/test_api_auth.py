"""Authentication, roles and who may see which order (API in-process, real store and PSP)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from api.main import create_app
from api.threaded_server import ThreadedServer
from bootstrap.composition import Container, build
from bootstrap.migrate import migrate
from bootstrap.settings import Settings
from tests.integration.conftest import FAST

CHECKOUT_A, CHECKOUT_B, OPS = "checkout-key-a", "checkout-key-b", "ops-key-0001"
CART = {
    "buyer_id": "buyer-1",
    "currency": "JPY",
    "items": [{"seller_id": "s1", "sku": "x", "quantity": 1, "unit_amount": 1200}],
    "payment_method": "pm_card_visa",
}


@pytest.fixture
def client(
    database_url: str, simulator_server: ThreadedServer, simulator: object
) -> Iterator[httpx.Client]:
    """The API with three keys, served over loopback HTTP in this process."""
    keys = f"checkout:{CHECKOUT_A},checkout:{CHECKOUT_B},ops:{OPS}"
    settings = Settings(database_url=database_url, api_keys=keys, webhook_secret="s" * 16, **FAST)
    migrate(settings)
    container: Container = build(settings, psp_url=simulator_server.url)
    server = ThreadedServer(create_app(container)).start()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http
    server.stop()
    container.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())}


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-key-123", "Basic Y2hlY2tvdXQ=", f"Token {CHECKOUT_A}"]
)
def test_missing_or_wrong_credentials_are_401(client: httpx.Client, header: str | None) -> None:
    headers = {"Idempotency-Key": "k"} | ({"Authorization": header} if header else {})
    response = client.post("/v1/checkouts", json=CART, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


def test_ops_keys_do_not_create_checkouts(client: httpx.Client) -> None:
    assert client.post("/v1/checkouts", json=CART, headers=bearer(OPS)).status_code == 403


def test_a_client_sees_only_its_own_orders_and_ops_see_all(client: httpx.Client) -> None:
    created = client.post("/v1/checkouts", json=CART, headers=bearer(CHECKOUT_A))
    assert created.status_code == 201 and created.json()["amount"] == 1200
    url = created.headers["Location"]
    assert client.get(url, headers=bearer(CHECKOUT_A)).status_code == 200
    assert client.get(url, headers=bearer(CHECKOUT_B)).status_code == 404
    assert client.get(f"{url}/events", headers=bearer(CHECKOUT_B)).status_code == 404
    assert client.get(url, headers=bearer(OPS)).status_code == 200


def test_the_same_key_from_two_clients_makes_two_orders(client: httpx.Client) -> None:
    key = {"Idempotency-Key": "shared-key"}
    a = client.post("/v1/checkouts", json=CART, headers=bearer(CHECKOUT_A) | key)
    b = client.post("/v1/checkouts", json=CART, headers=bearer(CHECKOUT_B) | key)
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]


def test_health_needs_no_key(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
