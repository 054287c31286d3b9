"""Each money check fails on the bug it names: planted records, as a broken system would leave
them, must not pass (a check that cannot fail proves nothing about the storm)."""

from __future__ import annotations

from typing import Any

from chaos import invariants
from chaos.workload import Outcome, Responses


def payment(
    pid: str, order_id: str, status: str = "captured", amount: int = 1000
) -> dict[str, Any]:
    captured = amount if status == "captured" else 0
    return {
        "id": pid,
        "reference": order_id,
        "status": status,
        "auth_status": "authorized" if status == "authorized" else status,
        "amount": amount,
        "captured_amount": captured,
        "refunded_amount": 0,
    }


def order(status: str, *references: str, captured: int = 1000) -> dict[str, Any]:
    return {
        "status": status,
        "captured_amount": captured,
        "refunded_amount": 0,
        "attempts": [{"psp_reference": r} for r in references],
    }


def test_a_second_charge_for_one_order_is_caught() -> None:
    good = [payment("pay_1", "o1"), payment("pay_2", "o2")]
    assert invariants.never_charged_twice(good).ok
    twice = [*good, payment("pay_3", "o1")]
    check = invariants.never_charged_twice(twice)
    assert not check.ok
    assert check.figures["charged twice"] == 1 and check.figures["examples"] == ["o1"]


def test_a_refunded_duplicate_is_not_a_double_charge() -> None:
    refunded = payment("pay_3", "o1") | {"refunded_amount": 1000}
    assert invariants.never_charged_twice([payment("pay_1", "o1"), refunded]).ok


def test_a_charge_the_order_does_not_know_is_caught() -> None:
    orders = {"o1": order("succeeded", "pay_1")}
    assert invariants.charges_belong_to_orders([payment("pay_1", "o1")], orders).ok
    stray = invariants.charges_belong_to_orders(
        [payment("pay_1", "o1"), payment("pay_9", "o1", status="authorized")], orders
    )
    assert not stray.ok and stray.figures["unknown to their order"] == 1


def test_an_amount_the_psp_and_the_order_disagree_on_is_caught() -> None:
    orders = {"o1": order("succeeded", "pay_1", captured=900)}
    check = invariants.charges_belong_to_orders([payment("pay_1", "o1")], orders)
    assert not check.ok and check.figures["amounts not reconciled"] == 1


def test_an_acknowledged_order_missing_or_left_open_is_caught() -> None:
    outcomes = [Outcome("happy", "k1", order_id="o1"), Outcome("happy", "k2", order_id="o2")]
    orders = {"o1": order("succeeded", "pay_1"), "o2": order("failed")}
    assert invariants.no_order_lost(orders, outcomes).ok
    missing = invariants.no_order_lost({"o1": orders["o1"]}, outcomes)
    assert not missing.ok and missing.figures["acknowledged but missing"] == 1
    stuck = invariants.no_order_lost(orders | {"o2": order("processing")}, outcomes)
    assert not stuck.ok and stuck.figures["not final"] == 1


def test_one_key_that_made_two_orders_is_caught() -> None:
    one = Outcome("duplicate", "k1", order_id="o1", duplicate_ids={"o1"})
    assert invariants.one_order_per_key([one]).ok
    split = Outcome("duplicate", "k2", order_id="o2", duplicate_ids={"o2", "o3"})
    assert not invariants.one_order_per_key([one, split]).ok


def test_a_500_or_a_503_outside_an_outage_is_caught() -> None:
    responses = Responses(seen=[(1.0, 201, ""), (5.0, 503, "store-unavailable")])
    assert invariants.no_server_errors(responses, [(4.0, 6.0)]).ok
    assert not invariants.no_server_errors(responses, [(7.0, 9.0)]).ok
    crashed = Responses(seen=[(5.0, 500, "internal")])
    assert not invariants.no_server_errors(crashed, [(4.0, 6.0)]).ok


def test_a_failed_audit_fails_the_run() -> None:
    assert invariants.audit({"ok": True, "events": 9, "orders": 3}, 0).ok
    assert not invariants.audit({"ok": False, "violations": ["ledger"]}, 1).ok
    assert not invariants.audit({}, 2).ok


def test_money_kept_for_an_order_that_ended_without_a_sale_is_caught() -> None:
    expired = {"o1": order("expired", "p1", captured=0), "o2": order("expired", "p2", captured=0)}
    released = [payment("p1", "o1", status="voided"), payment("p2", "o2", status="voided")]
    assert invariants.closed_orders_keep_nothing(released, expired).ok
    kept = [payment("p1", "o1", status="voided"), payment("p2", "o2", status="authorized")]
    check = invariants.closed_orders_keep_nothing(kept, expired)
    assert not check.ok and check.figures["examples"] == ["o2"]
    late = [payment("p1", "o1", status="captured")]  # a challenge completed too late, kept
    assert not invariants.closed_orders_keep_nothing(late, expired).ok


def test_an_unexplained_settlement_row_fails_the_reconciliation_check() -> None:
    clean = {"rows": 40, "rows_matched": 40, "open_breaks_by_class": {}, "open_breaks": []}
    assert invariants.reconciled(clean, 0).ok
    planted = clean | {
        "open_breaks_by_class": {"unexplained": 1},
        "open_breaks": [{"kind": "unknown_payment"}],
    }
    check = invariants.reconciled(planted, 1)
    assert not check.ok and check.figures["examples"] == ["unknown_payment"]
    assert not invariants.reconciled({}, 2).ok  # a report that could not be read fails too
