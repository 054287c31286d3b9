"""Stored event names: explicit, stable, and the old module-path topics still resolve."""

from __future__ import annotations

import pytest
from eventsourcing.domain import ProgrammingError
from eventsourcing.utils import get_topic, resolve_topic

from app.application import PaymentsApp, PaymentsConfig
from domain import event_names
from domain.cart import Checkout, LineItem
from domain.order import PaymentOrder
from tests.unit.fakes import FakeClock, FakePSP
from tests.unit.orders import NOW


def test_every_event_is_stored_under_its_own_explicit_name() -> None:
    events = [
        v
        for v in vars(PaymentOrder).values()
        if isinstance(v, type) and v is not PaymentOrder.Event and issubclass(v, PaymentOrder.Event)
    ]
    assert {e.__name__ for e in events} >= set(event_names.EVENTS)
    for cls in events:
        name = cls.__name__
        assert get_topic(cls) == f"PaymentOrder.{name}"
    assert get_topic(PaymentOrder) == "PaymentOrder"


def test_the_topics_of_earlier_versions_resolve_to_the_same_classes() -> None:
    requested = resolve_topic("domain.order_base:OrderBase.AuthorizationRequested")
    assert requested is vars(PaymentOrder)["AuthorizationRequested"]
    captured = resolve_topic("domain.order_outcomes:OrderOutcomes.Captured")
    assert captured is vars(PaymentOrder)["Captured"]
    assert resolve_topic("domain.order:PaymentOrder") is PaymentOrder
    for name, old_topics in event_names.EVENTS.items():
        assert all(resolve_topic(old) is getattr(PaymentOrder, name) for old in old_topics)


def test_an_event_class_without_a_stored_name_is_refused_when_defined() -> None:
    with pytest.raises(ProgrammingError, match="Explicit topic not defined"):

        class Extended(PaymentOrder):
            TOPIC = "Extended"

            class Sneaky(PaymentOrder.Event):
                pass


def test_an_old_name_whose_class_is_gone_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(event_names.EVENTS, "Vanished", ("domain.order:PaymentOrder.Vanished",))
    with pytest.raises(TypeError, match="Vanished"):
        event_names.register_aliases(PaymentOrder)


def test_what_the_application_stores_uses_the_explicit_names() -> None:
    app = PaymentsApp(
        {"PERSISTENCE_MODULE": "eventsourcing.popo"},
        psp=FakePSP(),
        config=PaymentsConfig(),
        clock=FakeClock(NOW),
    )
    items = (LineItem("s1", "mug", 1, 1000),)
    written = app.place_checkout(
        Checkout("b", "EUR", items, "pm_card_visa", "automatic"), client_id="c", idempotency_key="k"
    )
    stored = app.recorder.select_events(written.order.id)
    assert [e.topic for e in stored] == [
        "PaymentOrder.Placed",
        "PaymentOrder.AuthorizationRequested",
        "PaymentOrder.Captured",
    ]
