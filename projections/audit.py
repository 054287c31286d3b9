"""`payments audit`: replay every event and prove the invariants, the read models and the ledger.

The store is read in one consistent snapshot, order by order (constant memory): each
order's history is replayed, checked, and compared with every read model at that read
model's own position, so a lagging projection is judged by what it has seen.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any, Protocol
from uuid import UUID

from adapters.db import Tx
from domain.ledger import Posting, postings_for
from domain.order import PaymentOrder
from domain.worklist import Timing, next_due
from projections import checks, positions, quarantine
from projections.catalog import NAMES
from projections.log import EventLog, replay
from projections.report import Report

SLICES = 64
"""How many ranges of order ids a parallel audit splits the store into; each process takes
the next free one, so a slow process or a late start costs no more than one slice."""


class Helpers(Protocol):
    """Other processes that audit slices of the store beside this one (bootstrap/audit_pool)."""

    def start(
        self, snapshot: str, positions: dict[str, int], held: set[tuple[str, str]]
    ) -> Callable[[], int | None]:
        """Start auditing slices in `snapshot`; returns how this process claims the next
        free slice (None when none is left)."""

    def results(self) -> list[Report]:
        """Wait for the other processes and return what each found."""

    def stop(self) -> None:
        """Have the other processes stop after their current slice, and wait for them."""


class Auditor:
    """Replays the store and compares it with the read models."""

    def __init__(self, event_log: EventLog, timing: Timing) -> None:
        self.log = event_log
        self.db = event_log.db
        self.timing = timing
        self.held: set[tuple[str, str]] = set()

    def run(
        self, progress: Callable[[int], None] | None = None, helpers: Helpers | None = None
    ) -> Report:
        """Audit everything; `progress` is told how many events each chunk covered. With
        `helpers`, other processes audit slices of the store in this one's snapshot (a
        store that can share one: PostgreSQL)."""
        report = Report()
        started = time.perf_counter()
        with self.db.read() as tx:
            report.positions = self._positions(tx)
            self.held = quarantine.held(tx)
            for projection, order_id in sorted(self.held):
                report.violate("quarantined", order_id, f"{projection} could not apply it")
            snapshot = self.db.export_snapshot(tx) if helpers else None
            if helpers and snapshot:
                claim = helpers.start(snapshot, report.positions, self.held)
                try:
                    self.audit_slices(tx, claim, report, progress)
                except BaseException:
                    helpers.stop()
                    raise
                for part in helpers.results():
                    report.merge(part)
                    if progress:
                        progress(part.events)
            else:
                self._audit_range(tx, None, None, report, progress)
            self._audit_totals(tx, report)
        report.seconds = time.perf_counter() - started
        return report

    def audit_slices(
        self,
        tx: Tx,
        claim: Callable[[], int | None],
        report: Report,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Audit the slices `claim` hands out until none is left (every process of a parallel
        audit runs this, each in the same snapshot)."""
        while (index := claim()) is not None:
            self._audit_range(tx, *slice_bounds(index), report, progress)

    def _audit_range(
        self,
        tx: Tx,
        low: UUID | None,
        high: UUID | None,
        report: Report,
        progress: Callable[[int], None] | None,
    ) -> None:
        """Audit the orders with ids from `low` (inclusive) to `high` (exclusive)."""
        for chunk in self._chunks(tx, report, low, high):
            self._audit_chunk(tx, chunk, report)
            if progress:
                progress(sum(len(events) for _, events in chunk))

    def replay(
        self, order_id: UUID, version: int | None = None, at: float | None = None
    ) -> tuple[PaymentOrder, list[Any]]:
        """One order as of a version or a time, and the events that made it."""
        with self.db.read() as tx:
            events = [e for _, e in self._history(tx, order_id)]
        events = [
            e
            for e in events
            if (version is None or e.originator_version <= version)
            and (at is None or e.timestamp.timestamp() <= at)
        ]
        if not events:
            raise LookupError(f"order {order_id} has no events in that range")
        return replay(events), events

    # ----------------------------------------------------------------- reading

    def _positions(self, tx: Tx) -> dict[str, int]:
        found = positions.read(self.db, tx, NAMES)
        return {name: found.get(name, 0) for name in NAMES}

    def _chunks(
        self, tx: Tx, report: Report, low: UUID | None, high: UUID | None
    ) -> Iterator[list[tuple[UUID, list[tuple[int, Any]]]]]:
        """Orders in id order from `low` to before `high`, CHUNK_EVENTS at a time, each with its
        (position, event) history; an order with an event that does not decode is a
        violation, left out."""
        last: UUID | None = None
        while True:
            broken: dict[UUID, str] = {}
            histories, last = self.log.histories_after(tx, last, low=low, high=high, broken=broken)
            if last is None:
                return
            for order_id, error in broken.items():
                report.violate("undecodable", order_id, error)
            yield list(histories.items())

    def _history(self, tx: Tx, order_id: UUID) -> list[tuple[int, Any]]:
        return self.log.positioned_histories(tx, [order_id]).get(order_id, [])

    # ----------------------------------------------------------------- checking

    def _audit_chunk(
        self, tx: Tx, chunk: list[tuple[UUID, list[tuple[int, Any]]]], report: Report
    ) -> None:
        keys = [str(order_id) for order_id, _ in chunk]
        models = checks.ReadModels.load(self.db, tx, keys)
        for (order_id, history), key in zip(chunk, keys, strict=True):
            report.orders += 1
            report.events += len(history)
            try:
                order = replay([e for _, e in history])
            except Exception as error:
                report.violate("replay", order_id, quarantine.describe(error))
                continue
            postings = [postings_for(e, order.currency) for _, e in history]
            checks.audit_history(order_id, history, order, report, postings)
            self._compare(order_id, key, history, order, models, report, postings)

    def _compare(
        self,
        order_id: UUID,
        key: str,
        history: list[tuple[int, Any]],
        order: PaymentOrder,
        models: checks.ReadModels,
        report: Report,
        postings: list[list[Posting]],
    ) -> None:
        positions = report.positions
        last = max(p for p, _ in history)
        held = {p for p, o in self.held if o == key}

        def as_of(position: int) -> PaymentOrder | None:
            """The order as a read model at `position` has it (the replay, when caught up)."""
            if last <= position:
                return order
            seen = [e for p, e in history if p <= position]
            return replay(seen) if seen else None

        if "orders" not in held:
            models.check_order(order_id, key, as_of(positions["orders"]), report)
        if "work_queue" not in held:
            queued = as_of(positions["work_queue"])
            models.check_work(key, next_due(queued, self.timing) if queued else None, report)
        if "ledger" not in held:
            ledger = [
                (e, lines)
                for (p, e), lines in zip(history, postings, strict=True)
                if p <= positions["ledger"] and lines
            ]
            models.check_ledger(key, ledger, report)
        if "failures" not in held:
            failures = [(p, e) for p, e in history if p <= positions["failures"]]
            models.check_failures(key, failures, order, report)

    def _audit_totals(self, tx: Tx, report: Report) -> None:
        totals: dict[str, int] = defaultdict(int)
        for (_, currency), balance in report.ledger.items():
            totals[currency] += balance
        for currency, total in totals.items():
            report.checked["ledger_total_zero"] += 1
            if total:
                report.violate("ledger_total_zero", "-", f"{currency} sums to {total}")
        checks.compare_balances(tx, report)
        checks.orphan_rows(tx, self.db, report)


def slice_bounds(index: int) -> tuple[UUID | None, UUID | None]:
    """The order ids of slice `index` of SLICES: an equal share of the id space (ids are
    uniform: uuid5 of the client and its key), None for an open end."""
    step = 2**128 // SLICES
    low = UUID(int=index * step) if index else None
    high = UUID(int=(index + 1) * step) if index < SLICES - 1 else None
    return low, high


def summary(report: Report) -> str:
    """A readable summary for people."""
    data = report.as_dict()
    lines = [
        f"audited {data['events']} events of {data['orders']} orders "
        f"in {data['seconds']} s ({data['events_per_second']} events/s)",
        "positions: " + ", ".join(f"{k}={v}" for k, v in data["positions"].items()),
        "checks: " + ", ".join(f"{k}={v}" for k, v in data["checks"].items()),
    ]
    for row in data["ledger"]:
        lines.append(f"  {row['account']:<40} {row['currency']} {row['balance']:>16}")
    if report.ok:
        lines.append("OK: no violations")
    else:
        lines.append(f"FAILED: {len(report.violations)} violations")
        lines += [
            f"  {v['check']}: order {v['order_id']}: {v['detail']}" for v in report.violations[:50]
        ]
    return "\n".join(lines)


def to_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2)
