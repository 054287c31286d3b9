"""The money checks after the storm: the PSP's record against ours, and the audit."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg

from chaos.workload import Outcome, Responses

SETTLED_ENOUGH = {"processing", "requires_payment_method", "requires_action"}
"""Statuses the system would still change by itself: none may remain once it is quiet."""


@dataclass
class Check:
    name: str
    ok: bool
    figures: dict[str, Any] = field(default_factory=dict)


def held(payment: dict[str, Any]) -> int:
    """Money a PSP payment holds from the buyer: captured and not refunded, or authorized."""
    if payment["status"] == "authorized":
        return int(payment["amount"])
    return int(payment["captured_amount"]) - int(payment["refunded_amount"])


def connect(database_url: str, tries: int = 20) -> psycopg.Connection[Any]:
    """A connection, waiting out a moment when the server is full or restarting."""
    for _ in range(tries - 1):
        try:
            return psycopg.connect(database_url)
        except psycopg.OperationalError:
            time.sleep(1.0)
    return psycopg.connect(database_url)


def load_orders(database_url: str, schema: str) -> dict[str, dict[str, Any]]:
    """Every order's API document, from the read model (the audit proves it equals a replay)."""
    with connect(database_url) as conn:
        rows = conn.execute(f'SELECT order_id, document FROM "{schema}".order_view').fetchall()  # noqa: S608
    return {order_id: json.loads(document) for order_id, document in rows}


def never_charged_twice(payments: list[dict[str, Any]]) -> Check:
    holding: Counter[str] = Counter(p["reference"] for p in payments if held(p) > 0)
    twice = sorted(ref for ref, n in holding.items() if n > 1)
    return Check(
        "no order charged twice",
        not twice,
        {"orders holding money": len(holding), "charged twice": len(twice), "examples": twice[:5]},
    )


def no_order_lost(orders: dict[str, dict[str, Any]], outcomes: list[Outcome]) -> Check:
    unsettled = [o for o in orders.values() if o["status"] in SETTLED_ENOUGH]
    placed = {o.order_id for o in outcomes if o.order_id}
    missing = sorted(placed - set(orders))
    statuses = Counter(o["status"] for o in orders.values())
    return Check(
        "no order lost",
        not unsettled and not missing,
        {
            "orders": len(orders),
            "by status": dict(sorted(statuses.items())),
            "not final": len(unsettled),
            "acknowledged but missing": len(missing),
        },
    )


def charges_belong_to_orders(
    payments: list[dict[str, Any]], orders: dict[str, dict[str, Any]]
) -> Check:
    """Every payment that took money is known to its order, and the amounts reconcile."""
    unknown, mismatched = [], []
    by_order: dict[str, int] = defaultdict(int)
    for payment in payments:
        if payment["auth_status"] not in ("authorized", "captured"):
            continue
        order = orders.get(payment["reference"])
        references = {a["psp_reference"] for a in order["attempts"]} if order else set()
        if payment["id"] not in references:
            unknown.append(payment["id"])
        by_order[payment["reference"]] += int(payment["captured_amount"]) - int(
            payment["refunded_amount"]
        )
    for order_id, order in orders.items():
        ours = order["captured_amount"] - order["refunded_amount"]
        if ours != by_order.get(order_id, 0):
            mismatched.append(order_id)
    return Check(
        "every charge belongs to an order that knows it, and reconciles",
        not unknown and not mismatched,
        {
            "psp payments that took money": sum(
                1 for p in payments if p["auth_status"] in ("authorized", "captured")
            ),
            "unknown to their order": len(unknown),
            "amounts not reconciled": len(mismatched),
            "examples": (unknown + mismatched)[:5],
        },
    )


CLOSED = {"expired", "canceled", "failed", "refunded"}


def closed_orders_keep_nothing(
    payments: list[dict[str, Any]], orders: dict[str, dict[str, Any]]
) -> Check:
    """An order that ended without a sale (a challenge completed too late included) holds
    no money at the PSP: every authorization released, every capture refunded."""
    keeping = sorted(
        {
            p["reference"]
            for p in payments
            if held(p) > 0 and orders.get(p["reference"], {}).get("status") in CLOSED
        }
    )
    closed = sum(1 for o in orders.values() if o["status"] in CLOSED)
    return Check(
        "no money kept for an order that ended without a sale",
        not keeping,
        {"closed orders": closed, "keeping money": len(keeping), "examples": keeping[:5]},
    )


def one_order_per_key(outcomes: list[Outcome]) -> Check:
    duplicates = [o for o in outcomes if o.intent == "duplicate"]
    split = [o.key for o in duplicates if len(o.duplicate_ids) > 1]
    return Check(
        "concurrent requests with one key made one order",
        not split,
        {"keys sent three times at once": len(duplicates), "split": len(split)},
    )


def no_server_errors(responses: Responses, outages: list[tuple[float, float]]) -> Check:
    """No 5xx except a 503 while the database was being cut (and shortly after)."""
    bad = []
    for at, status, problem in responses.seen:
        if status < 500:
            continue
        in_outage = any(start <= at <= end for start, end in outages)
        if not (status == 503 and in_outage):
            bad.append(f"{status} {problem}")
    statuses = Counter(status for _, status, _ in responses.seen)
    return Check(
        "no 5xx but 503 during a database outage",
        not bad,
        {"responses": dict(sorted(statuses.items())), "violations": bad[:5]},
    )


def audit(report: dict[str, Any], returncode: int) -> Check:
    figures = {
        "events": report.get("events"),
        "orders": report.get("orders"),
        "violations": report.get("violations", [])[:5],
    }
    return Check(
        "payments audit: ledger, read models, reasons, one success per PSP key",
        returncode == 0 and report.get("ok", False),
        figures,
    )


def reconciled(report: dict[str, Any], returncode: int) -> Check:
    """The PSP's settlement report of the storm matches our records: no unexplained break
    (a charge or payout we cannot place); breaks an operator must look at are counted."""
    by_class = report.get("open_breaks_by_class", {})
    return Check(
        "the settlement report reconciles with no unexplained break",
        returncode in (0, 1) and not by_class.get("unexplained") and bool(report.get("rows")),
        {
            "rows": report.get("rows"),
            "matched": report.get("rows_matched"),
            "open breaks by class": by_class,
            "examples": [b["kind"] for b in report.get("open_breaks", [])][:5],
        },
    )


def webhooks_delivered(events: list[dict[str, Any]], received: dict[str, Any]) -> Check:
    """Every public event reached the receiver at least once, verified, each order's in the
    order they happened (first arrivals)."""
    first = list(dict.fromkeys(e["id"] for e in received["received"]))
    arrived = set(first)
    missing = [e["id"] for e in events if e["id"] not in arrived]
    by_order: dict[str, list[str]] = defaultdict(list)
    for event in events:
        by_order[event["order_id"]].append(event["id"])
    out_of_order = [
        order_id
        for order_id, ids in by_order.items()
        if [i for i in first if i in set(ids)] != [i for i in ids if i in arrived]
    ]
    return Check(
        "every public event delivered, verified, in order per order",
        not missing and not out_of_order and not received["unverified"],
        {
            "public events": len(events),
            "deliveries received": len(received["received"]),
            "missing": len(missing),
            "orders out of order": len(out_of_order),
            "unverified": received["unverified"],
            "examples": (missing + out_of_order)[:5],
        },
    )
