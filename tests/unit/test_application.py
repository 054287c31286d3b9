"""The application service over the in-memory event store (no I/O) and a fake PSP."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from app.application import PaymentsApp, PaymentsConfig
from app.recovery_commands import RecoveryCommands
from domain.calls import Action, CallKind
from domain.cart import Checkout, LineItem
from domain.errors import IdempotencyKeyReused, IllegalTransition, OrderNotFound
from domain.psp import Inquiry, PSPResult, PSPStatus, PSPTimeout
from domain.statuses import AttemptStatus, OrderStatus
from tests.unit.fakes import FakeClock, FakePSP
from tests.unit.orders import NOW

ITEMS = (LineItem("s1", "mug", 2, 1000), LineItem("s2", "tea", 1, 550))


@pytest.fixture
def psp() -> FakePSP:
    return FakePSP()


@pytest.fixture
def app(psp: FakePSP) -> PaymentsApp:
    env = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    return PaymentsApp(
        env, psp=psp, config=PaymentsConfig(), clock=FakeClock(NOW), rand=lambda: 0.5
    )


def checkout(method: str = "pm_card_visa", capture: str = "automatic") -> Checkout:
    return Checkout("buyer-1", "EUR", ITEMS, method, capture)


def test_checkout_records_then_charges_once(app: PaymentsApp, psp: FakePSP) -> None:
    written = app.place_checkout(checkout(), client_id="c1", idempotency_key="k1")
    assert not written.replayed and written.order.status == OrderStatus.SUCCEEDED
    assert psp.calls == [("authorize", f"{written.order.id}:authorize:1")]
    types = [type(e).__name__ for e in app.history(written.order.id)]
    assert types == ["Placed", "AuthorizationRequested", "Captured"]


def test_a_retried_key_replays_without_a_second_charge(app: PaymentsApp, psp: FakePSP) -> None:
    first = app.place_checkout(checkout(), client_id="c1", idempotency_key="k1")
    again = app.place_checkout(checkout(), client_id="c1", idempotency_key="k1")
    assert again.replayed and again.order.id == first.order.id
    assert again.order.version == first.order.version
    assert len(psp.calls) == 1
    assert again.position is not None and first.position is not None
    assert again.position >= first.position  # a read at this position sees the order


def test_a_command_that_records_nothing_still_answers_a_position(app: PaymentsApp) -> None:
    first = app.place_checkout(checkout(), client_id="c1", idempotency_key="k1")
    other = app.place_checkout(checkout(), client_id="c2", idempotency_key="k2")
    unchanged = app.change(first.order.id, lambda o: None)  # a webhook got there first, say
    assert other.position is not None
    assert unchanged.position == other.position  # the newest: covers the order's last event


def test_the_same_key_from_another_client_is_another_order(app: PaymentsApp) -> None:
    a = app.place_checkout(checkout(), client_id="c1", idempotency_key="k1")
    b = app.place_checkout(checkout(), client_id="c2", idempotency_key="k1")
    assert a.order.id != b.order.id and not b.replayed


def test_a_reused_key_with_another_body_is_refused(app: PaymentsApp) -> None:
    app.place_checkout(checkout(), client_id="c1", idempotency_key="k1")
    with pytest.raises(IdempotencyKeyReused):
        app.place_checkout(checkout("pm_card_declined"), client_id="c1", idempotency_key="k1")


def test_a_timeout_is_recorded_with_an_inquiry_scheduled(app: PaymentsApp, psp: FakePSP) -> None:
    psp.outages.append(PSPTimeout("slow"))
    order = app.place_checkout(checkout(), client_id="c1", idempotency_key="k1").order
    attempt = order.attempts[0]
    assert attempt.status == AttemptStatus.UNKNOWN and attempt.next_action == Action.INQUIRE
    assert order.status == OrderStatus.PROCESSING
    assert [type(e).__name__ for e in app.history(order.id)][-2:] == [
        "PSPTimedOut",
        "RetryScheduled",
    ]


def test_decline_then_another_card_with_a_replayable_key(app: PaymentsApp, psp: FakePSP) -> None:
    order = app.place_checkout(
        checkout("pm_card_declined"), client_id="c1", idempotency_key="k1"
    ).order
    assert order.status == OrderStatus.REQUIRES_PAYMENT_METHOD
    second = app.add_attempt(order.id, "pm_card_visa", request_key="retry-1")
    assert second.order.status == OrderStatus.SUCCEEDED
    replay = app.add_attempt(order.id, "pm_card_visa", request_key="retry-1")
    assert replay.replayed and len(replay.order.attempts) == 2
    with pytest.raises(IdempotencyKeyReused):
        app.add_attempt(order.id, "pm_card_mastercard", request_key="retry-1")
    assert [op for op, _ in psp.calls] == ["authorize", "authorize"]


def test_manual_capture_and_refund_with_keys(app: PaymentsApp, psp: FakePSP) -> None:
    order = app.place_checkout(
        checkout(capture="manual"), client_id="c1", idempotency_key="k1"
    ).order
    assert order.status == OrderStatus.AUTHORIZED
    assert app.capture(order.id, 2000, "cap-1").order.status == OrderStatus.SUCCEEDED
    assert app.capture(order.id, 2000, "cap-1").replayed
    app.refund(order.id, 500, "ref-1")
    again = app.refund(order.id, 500, "ref-1")
    assert again.replayed and again.order.refunded_amount == 500
    assert [op for op, _ in psp.calls] == ["authorize", "capture", "refund"]
    with pytest.raises(IllegalTransition):
        app.cancel(order.id)


def test_time_travel_rebuilds_any_version(app: PaymentsApp) -> None:
    order = app.place_checkout(checkout(), client_id="c1", idempotency_key="k1").order
    assert app.get_order(order.id, version=2).status == OrderStatus.PROCESSING
    assert app.get_order(order.id, version=3).status == OrderStatus.SUCCEEDED
    with pytest.raises(OrderNotFound):
        app.get_order(order.id, version=4)
    with pytest.raises(OrderNotFound):
        app.get_order(uuid.uuid4())


def test_a_stale_copy_reloads_and_reapplies_after_a_concurrent_save(app: PaymentsApp) -> None:
    order = app.place_checkout(
        checkout(capture="manual"), client_id="c1", idempotency_key="k1"
    ).order
    stale = app.get_order(order.id)
    app.change(order.id, lambda o: o.request_capture(None, NOW))  # another process wins
    with pytest.raises(IllegalTransition):  # reapplied on the fresh order, the guard refuses
        app.change(order.id, lambda o: o.request_capture(None, NOW), stale)
    assert len(app.get_order(order.id).operations) == 1


def test_a_write_whose_acknowledgement_was_lost_counts_as_saved(app: PaymentsApp) -> None:
    order = app.place_checkout(
        checkout(capture="manual"), client_id="c1", idempotency_key="k1"
    ).order
    order.request_capture(None, NOW + timedelta(seconds=1))
    app.events.put(list(order.pending_events))  # the first try committed, unacknowledged...
    assert app.save_once(order) == []  # ...and the retry recognises its own events
    assert app.get_order(order.id).version == order.version


def test_a_follow_up_command_loads_the_order_once_and_checks_who_asks(
    app: PaymentsApp, psp: FakePSP, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = app.place_checkout(
        checkout(capture="manual"), client_id="c1", idempotency_key="k1"
    ).order
    loads: list[uuid.UUID] = []
    get = app.repository.get

    def counting_get(order_id: uuid.UUID, **kwargs: object) -> object:
        loads.append(order_id)
        return get(order_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app.repository, "get", counting_get)
    with pytest.raises(OrderNotFound):
        app.capture(order.id, None, "cap-1", client="someone-else")
    assert app.history(order.id)[-1].originator_version == order.version  # nothing recorded
    loads.clear()
    captured = app.capture(order.id, None, "cap-1", client="c1").order
    assert captured.status == OrderStatus.SUCCEEDED and loads == [order.id]
    with pytest.raises(OrderNotFound):
        app.history(order.id, client="someone-else")
    assert app.get_order(order.id, client=None).status == OrderStatus.SUCCEEDED


def test_two_inquiries_about_one_call_at_once_count_once(app: PaymentsApp, psp: FakePSP) -> None:
    psp.outages.append(PSPTimeout("no answer"))
    order = app.place_checkout(checkout(), client_id="c1", idempotency_key="k1").order
    assert order.attempts[0].status == AttemptStatus.UNKNOWN
    key = order.attempts[0].psp_key  # the PSP says: still processing (nothing settles it)
    psp.done[key] = PSPResult("pay_1", PSPStatus.PROCESSING, order.amount, "EUR")
    commands = RecoveryCommands(app)
    inquire = psp.inquire
    raced: list[bool] = []

    def racing(inquiry: Inquiry) -> PSPResult | None:
        if not raced:  # another worker asks about the same call, and records first
            raced.append(True)
            commands.inquire(order.id, CallKind.AUTHORIZE, 1)
        return inquire(inquiry)

    psp.inquire = racing  # type: ignore[method-assign]
    settled = commands.inquire(order.id, CallKind.AUTHORIZE, 1).order
    assert settled.attempts[0].psp_processing
    assert settled.attempts[0].inquiries == 1
    types = [type(e).__name__ for e in app.history(order.id)]
    assert types.count("OutcomeInquired") == 1
