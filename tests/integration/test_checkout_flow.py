"""The pay-in core on both stores, against the simulator over real HTTP."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import pytest

from app.recovery_commands import RecoveryCommands
from bootstrap.composition import Container, build
from domain.calls import CallKind
from domain.cart import Checkout, LineItem
from domain.errors import IdempotencyKeyReused, OrderNotFound
from domain.psp import PSPResult, PSPStatus
from domain.statuses import AttemptStatus, OrderStatus

ITEMS = (LineItem("seller-a", "mug", 2, 1000), LineItem("seller-b", "tea", 1, 550))


def checkout(method: str = "pm_card_visa", capture: str = "automatic") -> Checkout:
    return Checkout("buyer-1", "EUR", ITEMS, method, capture)


def charges(simulator: httpx.Client, order_id: object) -> list[dict[str, Any]]:
    """What the PSP really holds for an order: authorizations and captures, not declines."""
    payments = simulator.get("/_control/payments").json()["payments"]
    return [
        p for p in payments if p["reference"] == str(order_id) and p["auth_status"] != "declined"
    ]


def faults(simulator: httpx.Client, *script: str) -> None:
    simulator.put(
        "/_control/faults", json={"script": list(script), "hang_ms": 2000}
    ).raise_for_status()


def test_happy_path_with_two_sellers(container: Container, simulator: httpx.Client) -> None:
    written = container.app.place_checkout(checkout(), client_id="c1", idempotency_key="k1")
    order = written.order
    assert order.status == OrderStatus.SUCCEEDED and written.position is not None
    assert [(s.seller_id, s.gross, s.platform_fee, s.payout) for s in order.captured] == [
        ("seller-a", 2000, 200, 1800),
        ("seller-b", 550, 55, 495),
    ]
    [payment] = charges(simulator, order.id)
    assert (payment["amount"], payment["status"]) == (2550, "captured")
    assert payment["idempotency_key"] == order.attempts[0].psp_key


def test_a_replay_returns_the_same_order_and_charges_once(
    container: Container, simulator: httpx.Client
) -> None:
    first = container.app.place_checkout(checkout(), client_id="c1", idempotency_key="k1")
    again = container.app.place_checkout(checkout(), client_id="c1", idempotency_key="k1")
    assert again.replayed and again.order.id == first.order.id
    assert len(charges(simulator, first.order.id)) == 1


def test_a_reused_key_with_another_body_changes_nothing(
    container: Container, simulator: httpx.Client
) -> None:
    first = container.app.place_checkout(checkout(), client_id="c1", idempotency_key="k1")
    with pytest.raises(IdempotencyKeyReused):
        container.app.place_checkout(
            checkout("pm_card_declined"), client_id="c1", idempotency_key="k1"
        )
    assert container.app.get_order(first.order.id).version == first.order.version
    assert len(simulator.get("/_control/payments").json()["payments"]) == 1


def test_twenty_concurrent_requests_with_one_key_charge_once(
    container: Container, simulator: httpx.Client
) -> None:
    results: list[Any] = []

    def place() -> None:
        results.append(
            container.app.place_checkout(checkout(), client_id="c1", idempotency_key="same")
        )

    threads = [threading.Thread(target=place) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.order.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert all(r.order.status == OrderStatus.SUCCEEDED for r in results)
    assert len(simulator.get("/_control/payments").json()["payments"]) == 1


def test_decline_then_a_new_attempt_succeeds(container: Container, simulator: httpx.Client) -> None:
    order = container.app.place_checkout(
        checkout("pm_card_insufficient_funds"), client_id="c1", idempotency_key="k1"
    ).order
    assert order.status == OrderStatus.REQUIRES_PAYMENT_METHOD
    assert order.attempts[0].failure_code == "insufficient_funds"
    order = container.app.add_attempt(order.id, "pm_card_visa", "retry-1").order
    assert order.status == OrderStatus.SUCCEEDED
    assert [a.status for a in order.attempts] == [AttemptStatus.DECLINED, AttemptStatus.CAPTURED]
    assert len(charges(simulator, order.id)) == 1


@pytest.mark.parametrize(
    ("fault", "attempt_status", "charged"),
    [
        ("timeout", AttemptStatus.UNKNOWN, 1),
        ("lost_response", AttemptStatus.UNKNOWN, 1),
        ("error_after", AttemptStatus.UNKNOWN, 1),
        ("error_before", AttemptStatus.PENDING, 0),
        ("rate_limit", AttemptStatus.PENDING, 0),
    ],
)
def test_outages_are_recorded_with_what_is_known(
    container: Container,
    simulator: httpx.Client,
    fault: str,
    attempt_status: AttemptStatus,
    charged: int,
) -> None:
    faults(simulator, fault)
    order = container.app.place_checkout(checkout(), client_id="c1", idempotency_key="k1").order
    attempt = order.attempts[0]
    assert order.status == OrderStatus.PROCESSING
    assert attempt.status == attempt_status and attempt.next_action is not None
    assert attempt.failure_code and attempt.failure_message
    assert len(charges(simulator, order.id)) == charged


def test_time_travel_shows_each_version(container: Container) -> None:
    order = container.app.place_checkout(checkout(), client_id="c1", idempotency_key="k1").order
    statuses = [container.app.get_order(order.id, version=v).status for v in (1, 2, 3)]
    assert statuses == [OrderStatus.PROCESSING, OrderStatus.PROCESSING, OrderStatus.SUCCEEDED]


def test_two_processes_acting_on_one_order_never_double_charge(
    container: Container, simulator_server: Any, simulator: httpx.Client
) -> None:
    other = build(container.settings, psp_url=simulator_server.url)
    try:
        order = container.app.place_checkout(
            checkout(capture="manual"), client_id="c1", idempotency_key="k1"
        ).order
        done: list[Any] = []
        errors: list[Exception] = []

        def capture(app: Any) -> None:
            try:
                done.append(app.capture(order.id, None))
            except Exception as error:  # collected and asserted below
                errors.append(error)

        threads = [threading.Thread(target=capture, args=(a,)) for a in (container.app, other.app)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(done) == 1 and len(errors) == 1
        assert type(errors[0]).__name__ == "IllegalTransition"
        assert container.app.get_order(order.id).status == OrderStatus.SUCCEEDED
        [payment] = charges(simulator, order.id)
        assert payment["captured_amount"] == 2550
    finally:
        other.close()


def test_unknown_orders_are_not_found(container: Container) -> None:
    with pytest.raises(OrderNotFound):
        container.app.get_order(uuid.uuid4())


def test_a_psp_rejection_goes_to_review_and_is_never_retried(
    container: Container, simulator: httpx.Client
) -> None:
    order = container.app.place_checkout(
        checkout(capture="manual"), client_id="c1", idempotency_key="k1"
    ).order
    payment = order.attempts[0].psp_reference
    simulator.post(f"/v1/payments/{payment}/void", headers={"Idempotency-Key": "out-of-band"})
    order = container.app.capture(order.id, None).order  # the PSP answers 409 invalid_state
    assert order.status == OrderStatus.NEEDS_REVIEW
    assert order.review is not None and order.review["reason"].startswith("psp_rejected: HTTP 409")
    assert order.operations[0].next_action is None


def test_a_rejected_compensation_flags_a_closed_order_without_reopening_it(
    container: Container, simulator: httpx.Client
) -> None:
    faults(simulator, *["error_before"] * 10)
    order = container.app.place_checkout(
        checkout(capture="manual"), client_id="c1", idempotency_key="k1"
    ).order
    commands = RecoveryCommands(container.app)
    while order.attempts[0].in_flight:  # the worker's resends, until the budget is spent
        order = commands.resend(order.id, order.attempts[0].kind, 1).order
    assert order.status == OrderStatus.FAILED
    faults(simulator)
    late = {
        "amount": 2550,
        "currency": "EUR",
        "payment_method": "pm_card_visa",
        "capture": False,
        "reference": str(order.id),
    }
    answer = simulator.post(
        "/v1/payments", json=late, headers={"Idempotency-Key": order.attempts[0].psp_key}
    )
    simulator.post(
        f"/v1/payments/{answer.json()['id']}/void", headers={"Idempotency-Key": "by-hand"}
    )
    result = PSPResult(answer.json()["id"], PSPStatus.AUTHORIZED, 2550, "EUR")
    container.app.apply_webhook(
        order.id, "evt_late", "payment.authorized", CallKind.AUTHORIZE, 1, result
    )
    order = commands.void_unused(order.id, 1).order  # the PSP: 409, already voided
    assert order.status == OrderStatus.FAILED
    assert order.review is not None and order.review["kind"] == "void"
