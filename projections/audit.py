"""`payments audit`: replay every event and prove the invariants, the read models and the ledger.

The store is read in one consistent snapshot, order by order (constant memory): each
order's history is replayed, checked, and compared with every read model at that read
model's own position, so a lagging projection is judged by what it has seen.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent

from adapters.db import Database, Tx
from domain.ledger import postings_for
from domain.order import PaymentOrder
from domain.worklist import Timing, next_due
from projections import checks
from projections.catalog import NAMES
from projections.log import replay

CHUNK = 500


@dataclass
class Report:
    """What the audit found: counts, the replayed ledger, and every violation."""

    events: int = 0
    orders: int = 0
    seconds: float = 0.0
    positions: dict[str, int] = field(default_factory=dict)
    ledger: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    """Balances replayed from every event."""
    projected_ledger: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    """Balances replayed from the events the ledger projection has seen."""
    expected_rows: int = 0
    checked: Counter[str] = field(default_factory=Counter)
    violations: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def violate(self, check: str, order_id: object, detail: str) -> None:
        self.violations.append({"check": check, "order_id": str(order_id), "detail": detail})

    def as_dict(self) -> dict[str, Any]:
        rate = self.events / self.seconds if self.seconds else 0.0
        return {
            "ok": self.ok,
            "events": self.events,
            "orders": self.orders,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(rate),
            "positions": self.positions,
            "checks": dict(sorted(self.checked.items())),
            "ledger": [
                {"account": a, "currency": c, "balance": b}
                for (a, c), b in sorted(self.ledger.items())
            ],
            "violations": self.violations,
        }


class Auditor:
    """Replays the store and compares it with the read models."""

    def __init__(self, db: Database, mapper: Mapper[UUID], timing: Timing) -> None:
        self.db = db
        self.mapper = mapper
        self.timing = timing
        sqlite = db.dialect == "sqlite"
        self._position = "rowid" if sqlite else "notification_id"

    def run(self, progress: Callable[[int], None] | None = None) -> Report:
        """Audit everything; `progress` is told how many events each chunk covered."""
        report = Report()
        started = time.perf_counter()
        with self.db.read() as tx:
            report.positions = self._positions(tx)
            for chunk in self._chunks(tx):
                self._audit_chunk(tx, chunk, report)
                if progress:
                    progress(sum(len(events) for _, events in chunk))
            self._audit_totals(tx, report)
        report.seconds = time.perf_counter() - started
        return report

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
        fragment, params = self.db.in_list(list(NAMES))
        sql = f"SELECT name, position FROM projection_positions WHERE name {fragment}"  # noqa: S608
        rows = tx.execute(sql, params)
        found = {name: int(position) for name, position in rows}
        return {name: found.get(name, 0) for name in NAMES}

    def _chunks(self, tx: Tx) -> Iterator[list[tuple[UUID, list[tuple[int, Any]]]]]:
        """Orders in id order, CHUNK at a time, each with its (position, event) history."""
        last: Any = None
        while True:
            where = "WHERE originator_id > %s " if last is not None else ""
            ids = tx.execute(
                f"SELECT DISTINCT originator_id FROM {self.db.events_table} {where}"  # noqa: S608
                "ORDER BY originator_id LIMIT %s",
                ([last] if last is not None else []) + [CHUNK],
            )
            if not ids:
                return
            last = ids[-1][0]
            histories = self._histories(tx, [r[0] for r in ids])
            yield list(histories.items())

    def _history(self, tx: Tx, order_id: UUID) -> list[tuple[int, Any]]:
        raw: Any = order_id.hex if self.db.dialect == "sqlite" else order_id
        return self._histories(tx, [raw]).get(order_id, [])

    def _histories(self, tx: Tx, raw_ids: list[Any]) -> dict[UUID, list[tuple[int, Any]]]:
        fragment, params = self.db.in_list(raw_ids)
        rows = tx.execute(
            f"SELECT {self._position}, originator_id, originator_version, topic, state "  # noqa: S608
            f"FROM {self.db.events_table} WHERE originator_id {fragment} "
            "ORDER BY originator_id, originator_version",
            params,
        )
        histories: dict[UUID, list[tuple[int, Any]]] = defaultdict(list)
        for position, originator, version, topic, state in rows:
            order_id = originator if isinstance(originator, UUID) else UUID(str(originator))
            stored = StoredEvent(order_id, int(version), topic, bytes(state))
            histories[order_id].append((int(position), self.mapper.to_domain_event(stored)))
        return histories

    # ----------------------------------------------------------------- checking

    def _audit_chunk(
        self, tx: Tx, chunk: list[tuple[UUID, list[tuple[int, Any]]]], report: Report
    ) -> None:
        models = checks.ReadModels.load(self.db, tx, [str(order_id) for order_id, _ in chunk])
        for order_id, history in chunk:
            report.orders += 1
            report.events += len(history)
            order = replay([e for _, e in history])
            checks.audit_history(order_id, history, order, report)
            self._compare(order_id, history, order, models, report)

    def _compare(
        self,
        order_id: UUID,
        history: list[tuple[int, Any]],
        order: PaymentOrder,
        models: checks.ReadModels,
        report: Report,
    ) -> None:
        positions = report.positions
        last = max(p for p, _ in history)

        def as_of(position: int) -> PaymentOrder | None:
            """The order as a read model at `position` has it (the replay, when caught up)."""
            if last <= position:
                return order
            seen = [e for p, e in history if p <= position]
            return replay(seen) if seen else None

        models.check_order(order_id, as_of(positions["orders"]), report)
        queued = as_of(positions["work_queue"])
        models.check_work(order_id, next_due(queued, self.timing) if queued else None, report)
        currency = order.currency
        ledger = [
            (p, e) for p, e in history if p <= positions["ledger"] and postings_for(e, currency)
        ]
        models.check_ledger(order_id, ledger, currency, report)
        failures = [(p, e) for p, e in history if p <= positions["failures"]]
        models.check_failures(order_id, failures, report)

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
