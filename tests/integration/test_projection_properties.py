"""After any workload, interleaved with catch-up in batches of any size, every read model
equals a fresh replay of the event store (the audit finds nothing)."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootstrap.composition import Container
from domain.cart import Checkout, LineItem
from domain.errors import DomainError
from projections.audit import Auditor

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
