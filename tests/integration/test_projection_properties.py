"""After any workload, interleaved with catch-up in batches of any size, every read model
equals a fresh replay of the event store (the audit finds nothing), and the public events
(built from the runner's one replay per batch) equal each order replayed version by version."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootstrap.composition import Container
from domain.cart import Checkout, LineItem
from domain.errors import DomainError
from projections.audit import Auditor
from projections.documents import order_document, utc

TOKENS = ["pm_card_visa", "pm_card_declined", "pm_card_insufficient_funds"]
FAULTS = ["none", "timeout", "lost_response", "error_before", "error_after", "rate_limit"]

step = st.one_of(
    st.tuples(st.just("checkout"), st.sampled_from(TOKENS), st.booleans(), st.sampled_from(FAULTS)),
    st.tuples(st.just("retry"), st.integers(0, 50), st.sampled_from(TOKENS)),
    st.tuples(st.just("capture"), st.integers(0, 50), st.integers(1, 2555)),
    st.tuples(st.just("refund"), st.integers(0, 50), st.integers(1, 2555)),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("project"), st.integers(1, 7)),
)


def run_step(
    container: Container, simulator: httpx.Client, orders: list[Any], action: tuple[Any, ...]
) -> None:
    app = container.app
    name = action[0]
    if name == "checkout":
        _, token, manual, fault = action
        simulator.put("/_control/faults", json={"script": [fault], "hang_ms": 700})
        items = (LineItem("s1", "a", 1, 2000), LineItem("s2", "b", 1, 555))
        checkout = Checkout("buyer", "EUR", items, token, "manual" if manual else "automatic")
        orders.append(
            app.place_checkout(checkout, client_id="c", idempotency_key=str(uuid.uuid4())).order.id
        )
        simulator.put("/_control/faults", json={})
    elif name == "project":
        container.runner.batch_size = action[1]
        container.runner.run_once()
    elif orders:
        order_id = orders[action[1] % len(orders)]
        commands = {
            "retry": lambda: app.add_attempt(order_id, action[2]),
            "capture": lambda: app.capture(order_id, action[2]),
            "refund": lambda: app.refund(order_id, action[2]),
            "cancel": lambda: app.cancel(order_id),
        }
        with contextlib.suppress(DomainError):  # refused commands change nothing (audited)
            commands[name]()


@settings(
    max_examples=15,
    stateful_step_count=1,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=3, max_size=16))
def test_read_models_always_equal_a_replay(
    container: Container, simulator: httpx.Client, steps: list[tuple[Any, ...]]
) -> None:
    orders: list[Any] = []
    for action in steps:
        run_step(container, simulator, orders, action)
        report = Auditor(container.runner.log, container.app.config.timing).run()
        assert report.ok, (action, report.violations)
    container.runner.catch_up()
    report = Auditor(container.runner.log, container.app.config.timing).run()
    assert report.ok, report.violations
    assert report.positions["orders"] == container.runner.lag()[0]
    assert public_events(container, orders) == replayed_public_events(container, orders)


def public_events(container: Container, orders: list[Any]) -> dict[str, tuple[str, Any]]:
    """The public events of these orders as the projection stored them: id -> (type, body)."""
    ids = sorted({str(o) for o in orders})
    fragment, params = container.db.in_list(ids)
    rows = container.db.one(
        f"SELECT id, type, body FROM public_events WHERE order_id {fragment}",  # noqa: S608
        params,
    )
    return {event_id: (kind, json.loads(body)) for event_id, kind, body in rows}


def replayed_public_events(container: Container, orders: list[Any]) -> dict[str, tuple[str, Any]]:
    """The same, derived the slow way: each order replayed from scratch, its document taken
    at every version that changed its status or refunded money."""
    expected: dict[str, tuple[str, Any]] = {}
    for order_id in set(orders):
        order: Any = None
        event: Any
        for event in container.app.history(order_id):
            before = order.status if order is not None else None
            order = event.mutate(order)
            kinds = [("", f"payment_order.{order.status.value}")] if order.status != before else []
            if type(event).__name__ == "Refunded":
                kinds.append(("_refund", "refund.succeeded"))
            for suffix, kind in kinds:
                event_id = f"evt_{order_id.hex}_{event.originator_version}{suffix}"
                body = {
                    "id": event_id,
                    "type": kind,
                    "api_version": "v1",
                    "created": utc(event.timestamp),
                    "order_id": str(order_id),
                    "data": order_document(order),
                }
                expected[event_id] = (kind, body)
    return expected
