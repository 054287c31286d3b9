from __future__ import annotations

from chaos.invariants import held, never_charged_twice
from chaos.schedule import INTENTS, schedule


def test_the_same_seed_gives_the_same_schedule() -> None:
    assert schedule(42, 100, 60) == schedule(42, 100, 60)
    assert schedule(42, 100, 60) != schedule(43, 100, 60)


def test_a_schedule_injects_about_thirty_percent_psp_faults_and_disrupts_throughout() -> None:
    plan = schedule(5, 200, 60)
    rates = sum(
        v
        for k, v in plan.psp_faults.items()
        if k.endswith("_rate") and "webhook" not in k and "mismatch" not in k
    )
    assert abs(rates - 0.30) < 0.001
    assert set(plan.intents) == set(INTENTS)
    times = [d.at_s for d in plan.disruptions]
    assert times == sorted(times) and times[-1] < 60
    assert {d.target for d in plan.disruptions} >= {"database"}


def test_money_held_counts_open_authorizations_and_unrefunded_captures() -> None:
    authorized = {"status": "authorized", "amount": 500, "captured_amount": 0, "refunded_amount": 0}
    refunded = {"status": "refunded", "amount": 500, "captured_amount": 500, "refunded_amount": 500}
    voided = {"status": "voided", "amount": 500, "captured_amount": 0, "refunded_amount": 0}
    assert (held(authorized), held(refunded), held(voided)) == (500, 0, 0)
    twice = [
        authorized | {"reference": "o1"},
        {**refunded, "refunded_amount": 100, "reference": "o1"},
    ]
    assert not never_charged_twice(twice).ok
    assert never_charged_twice([authorized | {"reference": "o1"}, voided | {"reference": "o1"}]).ok
