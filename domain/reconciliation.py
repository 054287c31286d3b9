"""Reconciliation: the PSP's settlement report, row by row, against what our orders recorded.

Each settlement batch is an aggregate (`SettlementBatch`) whose first event records the
rows and what matching found; importing the same batch again changes nothing. Every row is
matched to an order by our reference (the order id) and the PSP's reference (the attempt's
payment, a refund's id, a dispute's id), and its amount compared. A difference is a
**break**, in one of Xu's three classes:

- `auto_fixed`: explained by a rule and settled without anyone (`fee_only`: a fee with no
  payment, an expense; `settled_late`: a charge that settled in a later batch than its
  capture's, a matter of timing). Recorded as resolved, with the rule.
- `needs_operator`: the row is ours but differs from our records (`amount_differs`,
  `not_captured_here`, `refund_unknown`, `dispute_unknown`, `reversal_unexpected`,
  `currency_differs`, `adjustment`).
- `unexplained`: a row we cannot place at all (`unknown_payment`), or a payout that is not
  the sum of its batch (`payout_mismatch`).

A break never changes an order's money: it is a finding for an operator, who resolves it
with an audited command (`resolve_break`), like a manual review.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import IllegalTransition, InvalidInput
from domain.ledger import PSP_FEES, PSP_RECEIVABLE, Posting

BANK_PREFIX = "bank:"

ROW_TYPES = ("charge", "refund", "fee", "dispute", "dispute_reversal", "payout", "adjustment")


class BreakClass(StrEnum):
    AUTO_FIXED = "auto_fixed"
    NEEDS_OPERATOR = "needs_operator"
    UNEXPLAINED = "unexplained"


@dataclass(frozen=True)
class ReportRow:
    """One row of a settlement report (minor units, signed: money to us positive)."""

    batch_id: str
    booked_at: datetime
    type: str
    psp_reference: str
    merchant_reference: str
    currency: str
    gross: int
    fee: int
    net: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"booked_at": self.booked_at.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportRow:
        return cls(**(data | {"booked_at": datetime.fromisoformat(data["booked_at"])}))


@dataclass(frozen=True)
class OrderFacts:
    """What our records say about one order, as matching needs it."""

    currency: str
    captures: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    """The captured attempts' PSP payment -> (amount captured, when)."""
    attempts: frozenset[str] = frozenset()
    """Every PSP payment the order's attempts had (captured or not)."""
    refunds: dict[str, int] = field(default_factory=dict)
    """A succeeded refund's PSP id -> amount."""
    disputes: dict[str, tuple[int, str]] = field(default_factory=dict)
    """A dispute's id -> (amount, status)."""


@dataclass(frozen=True)
class Finding:
    """What matching found for one row: matched (no class), or a break."""

    row: int
    kind: str = "matched"
    klass: BreakClass | None = None
    detail: str = ""


def match(
    rows: list[ReportRow], facts: dict[str, OrderFacts | None], late_after: timedelta
) -> list[Finding]:
    """A finding for every row of one batch. `facts` holds every merchant reference of the
    rows (None: no such order); a charge booked more than `late_after` after its capture is
    `settled_late`."""
    findings = []
    for n, row in enumerate(rows):
        if row.type == "payout":
            findings.append(_payout(n, row, rows))
        elif row.type == "fee":
            findings.append(Finding(n, "fee_only", BreakClass.AUTO_FIXED, "booked to psp_fees"))
        elif row.type == "adjustment":
            findings.append(Finding(n, "adjustment", BreakClass.NEEDS_OPERATOR, "check at the PSP"))
        else:
            findings.append(_ours(n, row, facts.get(row.merchant_reference), late_after))
    return findings


def _payout(n: int, row: ReportRow, rows: list[ReportRow]) -> Finding:
    paid = -sum(r.net for r in rows if r.type != "payout" and r.currency == row.currency)
    if row.net != paid:
        detail = f"the payout is {row.net}, its batch's rows sum to {paid}"
        return Finding(n, "payout_mismatch", BreakClass.UNEXPLAINED, detail)
    return Finding(n)


def _ours(n: int, row: ReportRow, order: OrderFacts | None, late_after: timedelta) -> Finding:
    op = BreakClass.NEEDS_OPERATOR
    if order is None or (row.type == "charge" and row.psp_reference not in order.attempts):
        detail = f"no order of ours has {row.type} {row.psp_reference}"
        return Finding(n, "unknown_payment", BreakClass.UNEXPLAINED, detail)
    if row.currency != order.currency:
        return Finding(n, "currency_differs", op, f"the order is in {order.currency}")
    if row.type == "charge":
        return _charge(n, row, order, late_after)
    if row.type == "refund":
        return _refund(n, row, order)
    return _dispute(n, row, order)


def _refund(n: int, row: ReportRow, order: OrderFacts) -> Finding:
    amount = order.refunds.get(row.psp_reference)
    if amount is None:
        return Finding(
            n, "refund_unknown", BreakClass.NEEDS_OPERATOR, "the order has no such refund"
        )
    return _same(n, -row.gross, amount)


def _dispute(n: int, row: ReportRow, order: OrderFacts) -> Finding:
    op = BreakClass.NEEDS_OPERATOR
    amount, status = order.disputes.get(row.psp_reference, (None, ""))
    if amount is None:
        return Finding(n, "dispute_unknown", op, "the order never heard of this dispute")
    if row.type == "dispute_reversal" and status != "won":
        return Finding(n, "reversal_unexpected", op, f"the dispute is {status or 'open'}")
    return _same(n, abs(row.gross), amount)


def _charge(n: int, row: ReportRow, order: OrderFacts, late_after: timedelta) -> Finding:
    captured = order.captures.get(row.psp_reference)
    if captured is None:
        return Finding(n, "not_captured_here", BreakClass.NEEDS_OPERATOR, "we hold no capture")
    amount, at = captured
    if row.gross != amount:
        return _same(n, row.gross, amount)
    if row.booked_at - at > late_after:
        detail = f"captured {at.isoformat()}, settled {row.booked_at.isoformat()}"
        return Finding(n, "settled_late", BreakClass.AUTO_FIXED, detail)
    return Finding(n)


def _same(n: int, reported: int, ours: int) -> Finding:
    if reported == ours:
        return Finding(n)
    detail = f"the PSP reports {reported}, our records {ours}"
    return Finding(n, "amount_differs", BreakClass.NEEDS_OPERATOR, detail)


SETTLEMENT_SUSPENSE = "settlement_suspense"
"""What the PSP settled that our books cannot place (open or resolved breaks), until the
operator's correction, elsewhere, brings the books to the PSP's."""
ALREADY_BOOKED_FEES = frozenset({"dispute"})
"""Rows whose fee our books took when the event happened (DisputeOpened books its fee)."""


def settlement_postings(rows: list[ReportRow], broken: set[int]) -> list[Posting]:
    """What a settled batch books, summing to zero per currency: the payout to the bank,
    the PSP's fees not booked yet, and `psp_receivable` cleared by every row our books
    hold (the rows in `broken` excepted: what they moved goes to `settlement_suspense`)."""
    postings = []
    for currency in sorted({r.currency for r in rows}):
        mine = [(n, r) for n, r in enumerate(rows) if r.currency == currency]
        paid = -sum(r.net for _, r in mine if r.type == "payout")
        moved = [(n, r) for n, r in mine if r.type != "payout"]
        fees = -sum(r.fee for _, r in moved if r.type not in ALREADY_BOOKED_FEES)
        cleared = sum(
            r.gross + (r.fee if r.type in ALREADY_BOOKED_FEES else 0)
            for n, r in moved
            if n not in broken
        )
        suspense = cleared - paid - fees
        postings += [
            Posting(BANK_PREFIX + currency, currency, paid),
            Posting(PSP_FEES, currency, fees),
            Posting(PSP_RECEIVABLE, currency, -cleared),
            Posting(SETTLEMENT_SUSPENSE, currency, suspense),
        ]
    return [p for p in postings if p.amount]


def batch_id_for(psp: str, batch_id: str) -> UUID:
    """One aggregate per PSP batch, whoever imports it first."""
    return uuid5(NAMESPACE_URL, f"payments/settlement-batch/{psp}/{batch_id}")


class SettlementBatch(Aggregate):
    """One settlement batch of the PSP's report, and the breaks matching found in it."""

    TOPIC = "SettlementBatch"

    class Created(Aggregate.Created):
        TOPIC = "SettlementBatch.Created"  # the library's base of `Imported`; never stored

    @staticmethod
    def create_id(psp: str, batch_id: str, **_: Any) -> UUID:
        return batch_id_for(psp, batch_id)

    @classmethod
    def import_rows(
        cls, psp: str, batch_id: str, digest: str, rows: list[ReportRow], findings: list[Finding]
    ) -> SettlementBatch:
        breaks = [
            {
                "id": f"{psp}:{batch_id}:{f.row}",
                "row": f.row,
                "kind": f.kind,
                "class": str(f.klass),
                "detail": f.detail,
            }
            for f in findings
            if f.klass is not None
        ]
        return cls(
            psp=psp,
            batch_id=batch_id,
            digest=digest,
            rows=[r.as_dict() for r in rows],
            matched=sum(1 for f in findings if f.klass is None),
            breaks=breaks,
        )

    @event("Imported", topic="SettlementBatch.Imported")
    def __init__(
        self,
        psp: str,
        batch_id: str,
        digest: str,
        rows: list[dict[str, Any]],
        matched: int,
        breaks: list[dict[str, Any]],
    ) -> None:
        self.psp, self.batch_id, self.digest = psp, batch_id, digest
        self.rows = rows
        self.matched = matched
        self.breaks: dict[str, dict[str, Any]] = {}
        for found in breaks:
            auto = found["class"] == BreakClass.AUTO_FIXED
            resolution = f"auto: {found['kind']}" if auto else None
            self.breaks[found["id"]] = found | {"status": "resolved" if auto else "open"}
            self.breaks[found["id"]]["resolution"] = resolution

    def same_as(self, digest: str) -> bool:
        """Whether a copy of this batch with `digest` is the batch imported (a PSP does not
        change a settled batch; if it did, ask it)."""
        return digest == self.digest

    def resolve_break(self, break_id: str, resolution: str, note: str, operator: str) -> None:
        """An operator's finding for a break (audited, like a manual review)."""
        found = self.breaks.get(break_id)
        if found is None:
            raise InvalidInput("no such break in this batch", field="break")
        if found["status"] != "open":
            raise IllegalTransition("the break is resolved already")
        if not note.strip():
            raise InvalidInput("a note is required", field="note")
        self._resolved(break_id=break_id, resolution=resolution, note=note, operator=operator)

    @event("BreakResolved", topic="SettlementBatch.BreakResolved")
    def _resolved(self, break_id: str, resolution: str, note: str, operator: str) -> None:
        self.breaks[break_id] |= {
            "status": "resolved",
            "resolution": resolution,
            "note": note,
            "operator": operator,
        }

    def postings(self) -> list[Posting]:
        """What settling this batch books (derived from its recorded rows and breaks)."""
        rows = [ReportRow.from_dict(r) for r in self.rows]
        broken = {b["row"] for b in self.breaks.values() if b["class"] != BreakClass.AUTO_FIXED}
        return settlement_postings(rows, broken)

    def open_breaks(self) -> list[dict[str, Any]]:
        return [b for b in self.breaks.values() if b["status"] == "open"]

    def summary(self) -> dict[str, Any]:
        by_class: dict[str, int] = defaultdict(int)
        for found in self.open_breaks():
            by_class[found["class"]] += 1
        return {
            "batch_id": self.batch_id,
            "psp": self.psp,
            "imported_at": self.created_on.isoformat(),
            "rows": len(self.rows),
            "matched": self.matched,
            "breaks": len(self.breaks),
            "open_breaks": dict(sorted(by_class.items())),
        }
