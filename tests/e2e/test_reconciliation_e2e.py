"""A seeded day of orders reconciled end to end: the simulator settles them in short batches
(refunds, a lost and a won dispute, every quirk planted), `payments reconcile` pulls the
report, finds and classifies every break, an operator resolves the rest through the API,
and importing again changes nothing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import STORES, Stack, start_stack, stop_stack

pytestmark = pytest.mark.e2e
BATCH_S = 2.0
CART = {
    "buyer_id": "buyer-recon",
    "currency": "EUR",
    "items": [
        {"seller_id": "seller-a", "sku": "mug", "quantity": 1, "unit_amount": 2000},
        {"seller_id": "seller-b", "sku": "tea", "quantity": 1, "unit_amount": 1000},
    ],
    "payment_method": "pm_card_visa",
}


@pytest.fixture(scope="module", params=STORES)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    started = start_stack(
        request, tmp_path_factory.mktemp("recon"), request.param, settlement_grace_s="0.5"
    )
    yield started
    stop_stack(started)


def paid(stack: Stack) -> dict[str, Any]:
    response = stack.api.post(
        "/v1/checkouts", json=CART, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert response.json()["status"] == "succeeded", response.text
    order: dict[str, Any] = response.json()
    return order


def payment(order: dict[str, Any]) -> str:
    reference: str = order["attempts"][0]["psp_reference"]
    return reference


def dispute_is(status: str, order: dict[str, Any]) -> bool:
    return [d["status"] for d in order.get("disputes", [])] == [status]


def reconcile(stack: Stack) -> tuple[int, dict[str, Any]]:
    done = stack.run("reconcile", "--json")
    assert done.returncode in (0, 1), done.stderr.decode()[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, result


def test_a_day_reconciles_every_break_found_classified_and_resolved(
    stack: Stack, sim: httpx.Client
) -> None:
    sim.put(
        "/_control/faults",
        json={"settlement_delay_s": 0, "settlement_batch_s": BATCH_S, "fee_bps": 140},
    ).raise_for_status()
    _plain, refunded, lost, won, differing, late = (paid(stack) for _ in range(6))
    refund = stack.api.post(f"/v1/payment-orders/{refunded['id']}/refunds", json={"amount": 500})
    assert refund.status_code == 201
    for order, outcome in ((lost, "lost"), (won, "won")):
        opened = sim.post(f"/_control/payments/{payment(order)}/dispute", json={"amount": 1200})
        sim.post(f"/_control/disputes/{opened.json()['id']}/resolve", json={"outcome": outcome})
    quirks = {
        "amount_differs": payment(differing),
        "next_batch": payment(late),
        "fee_only": None,
        "unknown_payment": None,
    }
    planted = {}
    for kind, concerning in quirks.items():
        body = {"kind": kind} | ({"payment": concerning} if concerning else {})
        planted[kind] = sim.post("/_control/settlement/quirks", json=body).json()["reference"]
    for order, status in ((lost, "lost"), (won, "won")):
        stack.wait_for(order["id"], partial(dispute_is, status))
    time.sleep(2 * BATCH_S + 0.5)  # every batch closed, the late charge's one too

    code, result = reconcile(stack)
    assert code == 1
    kinds = {(b["kind"], b["class"]) for b in result["open_breaks"]}
    assert kinds == {("amount_differs", "needs_operator"), ("unknown_payment", "unexplained")}
    assert result["rows_matched"] >= 6 + 1 + 2 + 1  # charges, the refund, disputes, a reversal
    breaks = stack.api.get("/v1/reconciliation/breaks").json()["breaks"]
    auto = {b["kind"] for b in breaks if b["class"] == "auto_fixed"}
    assert auto == {"fee_only", "settled_late"}
    assert all(b["status"] == "resolved" for b in breaks if b["class"] == "auto_fixed")
    late_break = next(b for b in breaks if b["kind"] == "settled_late")
    assert late_break["row"]["psp_reference"] == planted["next_batch"]

    again_code, again = reconcile(stack)  # importing again changes nothing
    assert again_code == 1 and again["batches_new"] == []
    assert sorted(again["batches_already_imported"]) == sorted(
        result["batches_new"] + result["batches_already_imported"]
    )
    assert again["open_breaks"] == result["open_breaks"]

    for found in result["open_breaks"]:
        resolved = stack.api.post(
            f"/v1/reconciliation/breaks/{found['id']}/resolve",
            json={
                "resolution": "corrected_at_psp",
                "note": "checked with the PSP",
                "operator": "ana",
            },
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "resolved" and "ana" in resolved.json()["operator"]
    twice = stack.api.post(
        f"/v1/reconciliation/breaks/{result['open_breaks'][0]['id']}/resolve",
        json={"resolution": "accepted", "note": "again"},
    )
    assert twice.status_code == 409
    final_code, final = reconcile(stack)
    assert final_code == 0 and final["open_breaks"] == []
    assert stack.order(differing["id"])["captured_amount"] == differing["captured_amount"]
    batches = stack.api.get("/v1/reconciliation/batches").json()["batches"]
    assert batches and all(b["open_breaks"] == {} for b in batches)
    ledger = stack.api.get("/v1/ledger/balances").json()
    assert all(total["sum"] == 0 for total in ledger["totals"])
    balance = {row["account"]: row["balance"] for row in ledger["accounts"]}
    assert balance["bank:EUR"] > 0 and balance["psp_fees"] > 0
    # the charge settled at 3001 and the unknown 4200 wait in suspense; nothing else does
    assert balance["settlement_suspense"] == -(3001 + 4200)
    audit = json.loads(stack.run("audit", "--json").stdout)
    assert audit["ok"] and audit["checks"]["settlement_posting_sets_zero"] >= 2


def test_a_report_file_we_cannot_read_is_refused_and_imports_nothing(
    stack: Stack, sim: httpx.Client, tmp_path: Any
) -> None:
    before = stack.api.get("/v1/reconciliation/batches").json()["batches"]
    bad = tmp_path / "report.csv"
    bad.write_text(
        "batch_id,booked_at,type,psp_reference,merchant_reference,currency,gross,fee,net\n"
        "batch_x,2026-11-27T10:00:00Z,charge,pay_1,o1,EUR,100,0,100\n"
        "batch_x,2026-11-27T10:00:00Z,charge,pay_2,o1,EUR,100,0,99\n"
    )
    done = stack.run("reconcile", "--file", str(bad))
    assert done.returncode == 2
    assert b"line 3, net: must be gross + fee" in done.stderr
    assert stack.api.get("/v1/reconciliation/batches").json()["batches"] == before


def test_a_batch_the_psp_changed_is_named_and_the_rest_of_the_report_imported(
    stack: Stack, tmp_path: Any
) -> None:
    old, newer = f"batch_{uuid.uuid4().hex[:8]}", f"batch_{uuid.uuid4().hex[:8]}"
    header = "batch_id,booked_at,type,psp_reference,merchant_reference,currency,gross,fee,net\n"
    first = tmp_path / "first.csv"
    first.write_text(header + f"{old},2026-11-27T10:00:00Z,fee,fee_a,,EUR,0,-250,-250\n")
    assert stack.run("reconcile", "--file", str(first)).returncode in (0, 1)
    changed = tmp_path / "changed.csv"
    changed.write_text(
        header
        + f"{old},2026-11-27T10:00:00Z,fee,fee_a,,EUR,0,-250,-250\n"
        + f"{old},2026-11-27T11:00:00Z,fee,fee_c,,EUR,0,-10,-10\n"  # a row more
        + f"{newer},2026-11-28T10:00:00Z,fee,fee_b,,EUR,0,-100,-100\n"
    )
    done = stack.run("reconcile", "--file", str(changed), "--json")
    assert done.returncode == 1, done.stderr.decode()[-2000:]
    result = json.loads(done.stdout)
    assert result["batches_changed"] == [old] and result["batches_new"] == [newer]
    assert f"batch {old} differs from the one imported before".encode() in done.stderr
    batches = {
        b["batch_id"]: b for b in stack.api.get("/v1/reconciliation/batches").json()["batches"]
    }
    assert batches[old]["rows"] == 1 and batches[newer]["rows"] == 1  # as first imported


def test_the_worker_reconciles_on_its_schedule(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    scheduled = start_stack(
        request, tmp_path_factory.mktemp("scheduled"), "sqlite", reconcile_interval_s="0.5"
    )
    try:
        scheduled.faults(settlement_delay_s=0, settlement_batch_s=0.5)
        paid(scheduled)
        planted = scheduled.simulator.post(
            "/_control/settlement/quirks", json={"kind": "unknown_payment"}
        ).json()["reference"]
        deadline = time.monotonic() + 20
        found: list[dict[str, Any]] = []
        matched = 0
        # until the break is found and the order's charge and a payout are matched: the
        # charge's batch may close, and be imported, in a later pass than the break's
        while (not found or matched < 2) and time.monotonic() < deadline:
            time.sleep(0.3)
            found = scheduled.api.get(
                "/v1/reconciliation/breaks", params={"status": "open"}
            ).json()["breaks"]
            batches = scheduled.api.get("/v1/reconciliation/batches").json()["batches"]
            matched = sum(b["matched"] for b in batches)
        assert [(b["kind"], b["row"]["psp_reference"]) for b in found] == [
            ("unknown_payment", planted)
        ]
        assert matched >= 2, batches
    finally:
        stop_stack(scheduled)
