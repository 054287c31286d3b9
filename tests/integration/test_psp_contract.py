"""One contract, every connector: the same behaviour through the simulator and through Stripe
(on localstripe, a fake Stripe written by others, run as a real process).

Each test drives the application (write-ahead events, outcomes, the worker's inquiry) and
then checks the PSP's own books: what it really holds for the order.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from api.main import create_app
from api.threaded_server import ThreadedServer
from app.recovery_commands import RecoveryCommands
from bootstrap.composition import Container, build
from bootstrap.migrate import migrate
from bootstrap.settings import Settings
from chaos import stripe_books
from chaos.localstripe import LocalStripe
from domain.calls import CallKind
from domain.cart import Checkout, LineItem
from domain.psp import AuthorizeRequest, PSPConnectionLost, PSPPort, PSPResult
from domain.statuses import AttemptStatus, OrderStatus
from tests.integration.conftest import FAST

ITEMS = (LineItem("seller-a", "mug", 2, 1000), LineItem("seller-b", "tea", 1, 550))
STRIPE_KEY, WEBHOOK_SECRET = "sk_test_contract", "whsec_contract_secret"


@dataclass
class Connector:
    """One PSP behind the port, with what the contract needs to know about it."""

    name: str
    settings: Callable[[str], Settings]
    declined_token: Callable[[], str]
    books: Callable[[uuid.UUID], list[dict[str, Any]]]
    """What the PSP itself holds for an order: one entry per payment, normalised to
    {status, amount, captured, refunded}."""
    send_webhooks_to: Callable[[str | None], None]
    """Where the PSP sends its webhooks from now on (None: nowhere)."""


def simulator_connector(server: ThreadedServer) -> Connector:
    def books(order_id: uuid.UUID) -> list[dict[str, Any]]:
        payments = httpx.get(f"{server.url}/_control/payments", timeout=10).json()["payments"]
        return [
            {
                "status": p["status"],
                "amount": p["amount"],
                "captured": p["captured_amount"],
                "refunded": p["refunded_amount"],
            }
            for p in payments
            if p["reference"] == str(order_id)
        ]

    def hooks(url: str | None) -> None:
        app: Any = server.server.config.app
        sender = app.state.simulator.sender
        sender.url, sender.secret = url, WEBHOOK_SECRET

    return Connector(
        "simulator",
        lambda db: Settings(
            database_url=db, psp_url=server.url, webhook_secret=WEBHOOK_SECRET, **FAST
        ),
        lambda: "pm_card_declined",
        books,
        hooks,
    )


def stripe_connector(localstripe: LocalStripe) -> Connector:
    def books(order_id: uuid.UUID) -> list[dict[str, Any]]:
        payments = stripe_books.payments(localstripe.url, STRIPE_KEY)
        return [
            {
                "status": p["status"],
                "amount": p["amount"],
                "captured": p["captured_amount"],
                "refunded": p["refunded_amount"],
            }
            for p in payments
            if p["reference"] == str(order_id) and p["auth_status"] not in TOOK_NOTHING
        ]

    return Connector(
        "stripe",
        lambda db: Settings(
            database_url=db,
            psp="stripe",
            stripe_secret_key=STRIPE_KEY,
            stripe_api_base=localstripe.url,
            stripe_webhook_secret=WEBHOOK_SECRET,
            **FAST,
        ),
        lambda: stripe_books.declining_card(localstripe.url, STRIPE_KEY),
        books,
        lambda url: localstripe.add_webhook(url or "http://127.0.0.1:9/", WEBHOOK_SECRET),
    )


TOOK_NOTHING = {"unconfirmed", "declined"}


@pytest.fixture(params=["simulator", "stripe"])
def connector(
    request: pytest.FixtureRequest, simulator_server: ThreadedServer, simulator: httpx.Client
) -> Connector:
    if request.param == "simulator":
        return simulator_connector(simulator_server)
    localstripe: LocalStripe = request.getfixturevalue("localstripe")
    return stripe_connector(localstripe)


@pytest.fixture
def container(connector: Connector, tmp_path: Any) -> Iterator[Container]:
    settings = connector.settings(f"sqlite:///{tmp_path}/payments.db")
    migrate(settings)
    built = build(settings)
    yield built
    built.close()


def cart(method: str = "pm_card_visa", capture: str = "automatic") -> Checkout:
    return Checkout("buyer-1", "EUR", ITEMS, method, capture)


def place(container: Container, checkout: Checkout) -> Any:
    key = str(uuid.uuid4())
    return container.app.place_checkout(checkout, client_id="c1", idempotency_key=key).order


def test_an_automatic_capture_charges_once(container: Container, connector: Connector) -> None:
    order = place(container, cart())
    assert order.status == OrderStatus.SUCCEEDED
    assert order.attempts[0].psp_reference
    assert connector.books(order.id) == [
        {"status": "captured", "amount": 2550, "captured": 2550, "refunded": 0}
    ]


def test_manual_capture_in_part_then_refunds_in_parts(
    container: Container, connector: Connector
) -> None:
    order = place(container, cart(capture="manual"))
    assert order.status == OrderStatus.AUTHORIZED
    order = container.app.capture(order.id, 2000, "cap").order
    assert (order.status, order.captured_amount) == (OrderStatus.SUCCEEDED, 2000)
    order = container.app.refund(order.id, 300, "r1").order
    order = container.app.refund(order.id, 700, "r2").order
    assert (order.status, order.refunded_amount) == (OrderStatus.PARTIALLY_REFUNDED, 1000)
    [book] = connector.books(order.id)
    assert (book["captured"], book["refunded"]) == (2000, 1000)


def test_canceling_an_authorization_voids_it(container: Container, connector: Connector) -> None:
    order = place(container, cart(capture="manual"))
    order = container.app.cancel(order.id, "cancel").order
    assert order.status == OrderStatus.CANCELED
    assert order.attempts[0].status == AttemptStatus.VOIDED
    assert [b["status"] for b in connector.books(order.id)] == ["voided"]


def test_a_decline_is_a_result_and_another_card_succeeds(
    container: Container, connector: Connector
) -> None:
    order = place(container, cart(connector.declined_token()))
    assert order.status == OrderStatus.REQUIRES_PAYMENT_METHOD
    assert order.attempts[0].failure_code == "card_declined"
    order = container.app.add_attempt(order.id, "pm_card_visa", "retry").order
    assert order.status == OrderStatus.SUCCEEDED
    assert [b["status"] for b in connector.books(order.id) if b["captured"]] == ["captured"]


class LostAnswers(PSPPort):
    """The real connector does the work; the answer to the next authorization is lost on
    the way back (what a dropped connection does)."""

    def __init__(self, inner: PSPPort) -> None:
        self.inner = inner

    def prepare(self, request: AuthorizeRequest) -> str | None:
        return self.inner.prepare(request)

    def authorize(self, request: AuthorizeRequest) -> PSPResult:
        self.inner.authorize(request)
        raise PSPConnectionLost("the answer was lost")

    def capture(self, request: Any) -> PSPResult:
        return self.inner.capture(request)

    def void(self, request: Any) -> PSPResult:
        return self.inner.void(request)

    def refund(self, request: Any) -> PSPResult:
        return self.inner.refund(request)

    def inquire(self, inquiry: Any) -> PSPResult | None:
        return self.inner.inquire(inquiry)


def test_a_lost_answer_is_settled_by_inquiry_without_a_second_charge(
    container: Container, connector: Connector
) -> None:
    real = container.app.psp
    container.app.psp = LostAnswers(real)
    order = place(container, cart())
    assert order.attempts[0].status == AttemptStatus.UNKNOWN
    container.app.psp = real
    order = RecoveryCommands(container.app).inquire(order.id, CallKind.AUTHORIZE, 1).order
    assert order.status == OrderStatus.SUCCEEDED
    assert [b["status"] for b in connector.books(order.id)] == ["captured"]


def test_a_webhook_settles_an_order_whose_answer_was_lost(
    container: Container, connector: Connector
) -> None:
    server = ThreadedServer(create_app(container)).start()
    try:
        route = "stripe" if connector.name == "stripe" else "psp"
        connector.send_webhooks_to(f"{server.url}/v1/webhooks/{route}")
        time.sleep(1.2)  # localstripe also sends the events of the last second to a new endpoint
        real = container.app.psp
        container.app.psp = LostAnswers(real)
        order = place(container, cart())
        container.app.psp = real
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and order.status != OrderStatus.SUCCEEDED:
            time.sleep(0.1)
            order = container.app.get_order(order.id)
        assert order.status == OrderStatus.SUCCEEDED
        types = [type(e).__name__ for e in container.app.history(order.id)]
        assert "WebhookApplied" in types and "OutcomeInquired" not in types
    finally:
        connector.send_webhooks_to(None)
        server.stop()


BACK = "https://shop.example/back"


def challenged(container: Container) -> Any:
    key = str(uuid.uuid4())
    checkout = cart("pm_card_threeDSecure2Required")
    placed = container.app.place_checkout(
        checkout, client_id="c1", idempotency_key=key, return_url=BACK
    )
    order = placed.order
    assert order.status == OrderStatus.REQUIRES_ACTION
    assert order.next_action is not None and order.next_action["return_url"] == BACK
    return order


@pytest.mark.parametrize(
    ("choice", "status", "held"),
    [
        ("complete", OrderStatus.SUCCEEDED, ["captured"]),
        ("fail", OrderStatus.REQUIRES_PAYMENT_METHOD, []),
    ],
)
def test_a_challenge_answered_on_the_banks_page_is_settled_by_inquiry(
    container: Container, connector: Connector, choice: str, status: OrderStatus, held: list[str]
) -> None:
    order = challenged(container)
    url = order.next_action["url"]
    assert httpx.get(url, timeout=10).status_code == 200
    back = httpx.post(f"{url}/{choice}", follow_redirects=False, timeout=10)
    assert (back.status_code, back.headers["location"]) == (303, BACK)
    order = RecoveryCommands(container.app).inquire(order.id, CallKind.AUTHORIZE, 1).order
    assert order.status == status and order.next_action is None
    assert [b["status"] for b in connector.books(order.id) if b["captured"]] == held


def test_canceling_during_a_challenge_cancels_the_psp_payment(
    container: Container, connector: Connector
) -> None:
    order = challenged(container)
    order = container.app.cancel(order.id, "cancel").order
    assert order.status == OrderStatus.CANCELED
    order = RecoveryCommands(container.app).void_unused(order.id, 1).order
    assert order.attempts[0].status == AttemptStatus.VOIDED
    late = httpx.post(f"{order.attempts[0].action_url}/complete", timeout=10)
    assert late.status_code == 409  # the bank takes no answer for a canceled payment
    assert [b["status"] for b in connector.books(order.id) if b["captured"]] == []
