"""A short seeded chaos run (about a minute): the full harness, as `payments chaos` runs it."""

from __future__ import annotations

import pytest

from chaos.harness import run

pytestmark = [pytest.mark.chaos, pytest.mark.postgres, pytest.mark.usefixtures("many_connections")]


def test_a_seeded_storm_loses_nothing_and_charges_nothing_twice(postgres_database: str) -> None:
    report = run(postgres_database, seed=7, orders=60, storm_s=30, say=lambda _: None)
    summary = report.as_dict()
    assert report.ok, [c for c in summary["checks"] if not c["ok"]]
    assert summary["orders"] == 60
    assert sum(summary["processes_killed"].values()) >= 2, "the storm should have killed processes"
    counters = ("webhooks_sent", "most_in_flight")
    assert sum(v for k, v in summary["psp_faults_injected"].items() if k not in counters) >= 10


def test_a_short_storm_through_stripe_charges_nothing_twice(postgres_database: str) -> None:
    """The same storm against the Stripe connector: localstripe behind `payments psp-proxy`,
    with localstripe's own PaymentIntents as the books."""
    report = run(
        postgres_database, seed=11, orders=30, storm_s=20, say=lambda _: None, psp="stripe"
    )
    summary = report.as_dict()
    assert report.ok, [c for c in summary["checks"] if not c["ok"]]
    assert summary["orders"] == 30
    injected = summary["psp_faults_injected"]
    assert sum(v for k, v in injected.items() if k != "forwarded") >= 10
