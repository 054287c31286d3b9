"""The harness: start the stack, unleash the scheduled storm on a live workload, heal, wait for
quiet, then check the money."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaos import invariants
from chaos.schedule import SETTLEMENT, Disruption, Schedule, schedule
from chaos.stack import ChaosStack
from chaos.workload import Outcome, Responses, run_workload

OUTAGE_GRACE_S = 6.0
"""How long after a database cut a 503 is still expected (pools reconnecting)."""


@dataclass
class Storm:
    """What the disruptor actually did."""

    killed: Counter[str] = field(default_factory=Counter)
    database_cuts: int = 0
    connections_cut: int = 0
    outages: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class ChaosReport:
    seed: int
    orders: int
    seconds: float
    schedule: Schedule
    storm: Storm
    faults: dict[str, int]
    checks: list[invariants.Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seed": self.seed,
            "orders": self.orders,
            "seconds": round(self.seconds, 1),
            "psp_faults_injected": self.faults,
            "processes_killed": dict(self.storm.killed),
            "database_cuts": self.storm.database_cuts,
            "connections_cut": self.storm.connections_cut,
            "checks": [{"name": c.name, "ok": c.ok, "figures": c.figures} for c in self.checks],
        }


def run(
    database_url: str,
    seed: int,
    orders: int,
    storm_s: float | None = None,
    keep: bool = False,
    say: Callable[[str], None] = print,
    psp: str = "simulator",
) -> ChaosReport:
    """One seeded chaos run on PostgreSQL at `database_url`, against our simulator or (`psp`
    "stripe") localstripe behind the fault proxy."""
    started = time.monotonic()
    span = storm_s or max(20.0, orders * 0.25)
    plan = schedule(seed, orders, span)
    stack = ChaosStack.start(database_url, seed, psp)
    say(f"stack up in schema {stack.schema}; storm of {len(plan.disruptions)} disruptions")
    try:
        with stack.simulator() as sim:
            sim.put("/_control/faults", json=plan.psp_faults).raise_for_status()
        storm, outcomes, responses = _storm(stack, plan, span, say)
        say("healing: faults off, every process back, waiting for quiet")
        faults = _heal(stack)
        _wait_for_quiet(stack, timeout_s=240)
        checks = _check(stack, outcomes, responses, storm)
    finally:
        stack.stop(drop=not keep)
    return ChaosReport(seed, orders, time.monotonic() - started, plan, storm, faults, checks)


def _storm(
    stack: ChaosStack, plan: Schedule, span: float, say: Callable[[str], None]
) -> tuple[Storm, list[Outcome], Responses]:
    storm = Storm()
    stop = threading.Event()
    disruptor = threading.Thread(
        target=_disrupt, args=(stack, plan.disruptions, storm, stop), daemon=True
    )
    disruptor.start()
    outcomes, responses = run_workload(
        stack.api_url, plan.intents, plan.seed, span, tokens=stack.tokens
    )
    stop.set()
    disruptor.join()
    killed = dict(storm.killed)
    say(f"workload done: {len(outcomes)} orders; killed {killed}, {storm.database_cuts} db cuts")
    return storm, outcomes, responses


def _disrupt(
    stack: ChaosStack, disruptions: tuple[Disruption, ...], storm: Storm, stop: threading.Event
) -> None:
    start = time.monotonic()
    for disruption in disruptions:
        if stop.wait(max(0.0, start + disruption.at_s - time.monotonic())):
            return
        if disruption.target == "database":
            storm.outages.append((time.monotonic(), time.monotonic() + OUTAGE_GRACE_S))
            storm.connections_cut += stack.cut_database()
            storm.database_cuts += 1
            continue
        stack.kill(disruption.target)
        storm.killed[disruption.target] += 1
        stop.wait(disruption.down_s)
        stack.revive(disruption.target)


def _heal(stack: ChaosStack) -> dict[str, int]:
    for name in stack.processes:
        stack.revive(name)
    with stack.simulator() as sim:
        injected: dict[str, int] = sim.get("/_control/faults").json()["injected"]
        calm = {"webhook_events": "all"} | SETTLEMENT
        sim.put("/_control/faults", json=calm).raise_for_status()
    return {k: v for k, v in injected.items() if k != "none"}


def _wait_for_quiet(stack: ChaosStack, timeout_s: float) -> None:
    """Until no order is in a state the system would still change, and projections are current."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        orders = invariants.load_orders(stack.database_url, stack.schema)
        busy = [o for o in orders.values() if o["status"] in invariants.SETTLED_ENOUGH]
        quiet = not _deliveries_pending(stack) and not _work_pending(stack)
        if not busy and _projected(stack) and quiet:
            return
        time.sleep(1.0)


def _deliveries_pending(stack: ChaosStack) -> int:
    deliveries = f'"{stack.schema}".webhook_deliveries'
    with invariants.connect(stack.database_url) as conn:
        row = conn.execute(f"SELECT COUNT(*) FROM {deliveries} WHERE status = 'pending'").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def _work_pending(stack: ChaosStack) -> int:
    """Work the worker still owes (compensations, inquiries), holds lapsing days away aside."""
    queue = f'"{stack.schema}".work_queue'
    with invariants.connect(stack.database_url) as conn:
        row = conn.execute(f"SELECT COUNT(*) FROM {queue} WHERE task != 'lapse'").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def _projected(stack: ChaosStack) -> bool:
    events = f'"{stack.schema}".payments_events'
    positions = f'"{stack.schema}".projection_positions'
    with invariants.connect(stack.database_url) as conn:
        head = conn.execute(f"SELECT COALESCE(MAX(notification_id), 0) FROM {events}").fetchone()  # noqa: S608
        low = conn.execute(f"SELECT MIN(position) FROM {positions}").fetchone()  # noqa: S608
    return bool(head and low and low[0] >= head[0])


def _check(
    stack: ChaosStack, outcomes: list[Outcome], responses: Responses, storm: Storm
) -> list[invariants.Check]:
    payments = stack.books()
    orders = invariants.load_orders(stack.database_url, stack.schema)
    audit_run = stack.run("audit", "--json")
    audit_report = json.loads(audit_run.stdout or b"{}")
    return [
        invariants.never_charged_twice(payments),
        invariants.no_order_lost(orders, outcomes),
        invariants.charges_belong_to_orders(payments, orders),
        invariants.closed_orders_keep_nothing(payments, orders),
        invariants.one_order_per_key(outcomes),
        invariants.no_server_errors(responses, storm.outages),
        invariants.audit(audit_report, audit_run.returncode),
        invariants.webhooks_delivered(stack.public_events(), stack.received()),
        *([] if stack.localstripe else [_reconciled(stack)]),
    ]


def _reconciled(stack: ChaosStack) -> invariants.Check:
    """The simulator's settlement report of the storm, once its batches closed."""
    time.sleep(float(SETTLEMENT["settlement_batch_s"]) + 0.5)
    done = stack.run("reconcile", "--json")
    report = json.loads(done.stdout or b"{}") if done.returncode in (0, 1) else {}
    return invariants.reconciled(report, done.returncode)
