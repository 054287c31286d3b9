"""Reconciliation's application: settlement batches in an event store of their own.

Batches live in their own table (`reconciliation_events`) beside the orders', so the order
log, its projections and its audit never see them; this application reads them back by
replaying that log (a few events per batch). Matching reads orders through PaymentsApp.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import Environment, EnvType

from app.application import PaymentsApp
from domain.calls import CallKind
from domain.errors import InvalidInput, OrderNotFound
from domain.order import PaymentOrder
from domain.reconciliation import (
    OrderFacts,
    ReportRow,
    SettlementBatch,
    batch_id_for,
    match,
)
from domain.statuses import AttemptStatus, OperationStatus

CHANGED = (
    "differs from the one imported before: the PSP changed a settled batch; it stays as first "
    "imported and the rest of the report was imported (ask the PSP)"
)
"""Said of a batch in `Imported.changed`, by the command and the worker."""


@dataclass(frozen=True)
class Imported:
    """What one import did: batches new and already known, rows matched; and the batches
    that came again with other rows than those imported (the PSP changed a settled batch:
    kept as first imported, not imported again, while the rest of the report was)."""

    new: list[str]
    known: list[str]
    rows: int
    matched: int
    changed: list[str] = field(default_factory=list)


class ReconciliationApp(Application[UUID]):
    name = "reconciliation"

    def __init__(self, env: Mapping[str, str], orders: PaymentsApp, late_after: timedelta):
        self.orders = orders
        self.late_after = late_after
        super().__init__(dict(env))

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Only the settings we pass in: never the process environment behind our back."""
        return Environment(name, dict(env or {}))

    def import_rows(self, psp: str, rows: list[ReportRow]) -> Imported:
        """Import a report's rows, batch by batch; a batch seen before changes nothing. One
        that comes back with other rows is reported in `changed` and the other batches are
        imported all the same: one batch the PSP changed must not hold up the newer ones."""
        batches: dict[str, list[ReportRow]] = defaultdict(list)
        for row in rows:
            batches[row.batch_id].append(row)
        new: list[str] = []
        known: list[str] = []
        changed: list[str] = []
        matched = 0
        for batch_id, batch_rows in batches.items():
            digest = _digest(batch_rows)
            existing = self._batch(batch_id_for(psp, batch_id))
            if existing is None:
                facts = self._facts({r.merchant_reference for r in batch_rows})
                findings = match(batch_rows, facts, self.late_after)
                batch = SettlementBatch.import_rows(psp, batch_id, digest, batch_rows, findings)
                try:
                    self.save(batch)
                except IntegrityError:  # another import got there first: compare with its copy
                    existing = self._batch(batch.id)
                else:
                    new.append(batch_id)
                    matched += batch.matched
                    continue
            same = existing is not None and existing.same_as(digest)
            (known if same else changed).append(batch_id)
        return Imported(new, known, len(rows), matched, changed)

    def batches(self) -> list[SettlementBatch]:
        """Every imported batch, oldest first."""
        ids = dict.fromkeys(
            n.originator_id for n in self.recorder.select_notifications(start=None, limit=10**9)
        )
        return [self.repository.get(UUID(str(i))) for i in ids]

    def settlement_balances(self) -> dict[tuple[str, str], int]:
        """Every imported batch's settlement postings, summed by (account, currency)."""
        totals: dict[tuple[str, str], int] = defaultdict(int)
        for batch in self.batches():
            for posting in batch.postings():
                totals[posting.account, posting.currency] += posting.amount
        return dict(totals)

    def breaks(
        self, status: str | None = None, batches: list[SettlementBatch] | None = None
    ) -> list[dict[str, Any]]:
        """Every break (of `batches`, when the caller has read them already), with its
        batch and report row."""
        found = [
            _located(batch, b)
            for batch in (self.batches() if batches is None else batches)
            for b in batch.breaks.values()
        ]
        return [b for b in found if status is None or b["status"] == status]

    def resolve_break(
        self, break_id: str, resolution: str, note: str, operator: str
    ) -> dict[str, Any]:
        """An operator's finding for one break (audited in the batch's events); the break as
        it is now."""
        psp, _, rest = break_id.partition(":")
        batch_id, _, _ = rest.rpartition(":")
        batch = self._batch(batch_id_for(psp, batch_id)) if batch_id else None
        if batch is None:
            raise OrderNotFound("no such break")
        batch.resolve_break(break_id, resolution, note, operator)
        self.save(batch)
        return _located(batch, batch.breaks[break_id])

    def _batch(self, batch_id: UUID) -> SettlementBatch | None:
        try:
            batch: SettlementBatch = self.repository.get(batch_id)
        except AggregateNotFoundError:
            return None
        return batch

    def _facts(self, references: set[str]) -> dict[str, OrderFacts | None]:
        return {ref: self._order_facts(ref) for ref in references if ref}

    def _order_facts(self, reference: str) -> OrderFacts | None:
        try:
            events = self.orders.history(UUID(reference))
        except (ValueError, OrderNotFound, InvalidInput):
            return None
        order: PaymentOrder | None = None
        captured_at: dict[int, datetime] = {}
        event: Any
        for event in events:
            order = event.mutate(order)
            if type(event).__name__ == "Captured":
                captured_at.setdefault(event.attempt, event.timestamp)
        return facts_of(order, captured_at) if order is not None else None


def _located(batch: SettlementBatch, found: dict[str, Any]) -> dict[str, Any]:
    return found | {
        "batch_id": batch.batch_id,
        "psp": batch.psp,
        "row_data": batch.rows[found["row"]],
    }


def facts_of(order: PaymentOrder, captured_at: dict[int, datetime]) -> OrderFacts:
    """What matching needs to know of an order."""
    captures = {
        a.psp_reference: (order.captured_amount, captured_at[a.number])
        for a in order.attempts
        if a.status == AttemptStatus.CAPTURED and a.psp_reference and a.number in captured_at
    }
    refunds = {
        o.psp_reference: o.amount
        for o in order.operations
        if o.kind == CallKind.REFUND and o.status == OperationStatus.SUCCEEDED and o.psp_reference
    }
    return OrderFacts(
        currency=order.currency,
        captures=captures,
        attempts=frozenset(a.psp_reference for a in order.attempts if a.psp_reference),
        refunds=refunds,
        disputes={d.id: (d.amount, d.status.value) for d in order.disputes.values()},
    )


def _digest(rows: list[ReportRow]) -> str:
    canonical = json.dumps([r.as_dict() for r in rows], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
