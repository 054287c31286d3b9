"""Reconciliation's matching rules, each planted on its own, the batch aggregate, and the
report reader refusing what it cannot book faithfully."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.settlement_report import InvalidReport, parse
from app.application import PaymentsApp, PaymentsConfig
from app.reconciliation import ReconciliationApp
from domain.errors import IllegalTransition
from domain.ledger import Posting
from domain.reconciliation import (
    BreakClass,
    OrderFacts,
    ReportRow,
    SettlementBatch,
    match,
    settlement_postings,
)
from tests.unit.fakes import FakePSP

AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
OPERATOR = BreakClass.NEEDS_OPERATOR
LATE = timedelta(days=3)
ORDER = "3f2a9c0e-5b6d-5e1f-8a7b-3c2d1e0f9a8b"
FACTS = OrderFacts(
    currency="EUR",
    captures={"pay_1": (2550, AT - timedelta(hours=1))},
    attempts=frozenset({"pay_1", "pay_0"}),
    refunds={"re_1": 500},
    disputes={"dp_1": (1000, "won"), "dp_2": (300, "needs_response")},
)


def row(
    kind: str, ref: str, gross: int, fee: int = 0, order: str = ORDER, **kw: object
) -> ReportRow:
    fields = {
        "batch_id": "batch_1",
        "booked_at": AT,
        "type": kind,
        "psp_reference": ref,
        "merchant_reference": order,
        "currency": "EUR",
        "gross": gross,
        "fee": fee,
        "net": gross + fee,
    } | kw
    return ReportRow(**fields)  # type: ignore[arg-type]


def found(rows: list[ReportRow]) -> list[tuple[str, BreakClass | None]]:
    return [(f.kind, f.klass) for f in match(rows, {ORDER: FACTS}, LATE)]


def test_every_row_of_ours_matches() -> None:
    rows = [
        row("charge", "pay_1", 2550, -61),
        row("refund", "re_1", -500),
        row("dispute", "dp_1", -1000, -1500),
        row("dispute_reversal", "dp_1", 1000),
    ]
    net = sum(r.net for r in rows)
    rows.append(row("payout", "po_1", -net, order=""))
    assert found(rows) == [("matched", None)] * 5


@pytest.mark.parametrize(
    ("planted", "kind", "klass"),
    [
        (row("charge", "pay_1", 2551, -61), "amount_differs", BreakClass.NEEDS_OPERATOR),
        (row("charge", "pay_9", 4200), "unknown_payment", BreakClass.UNEXPLAINED),
        (row("charge", "pay_9", 4200, order="nobody"), "unknown_payment", BreakClass.UNEXPLAINED),
        (row("charge", "pay_0", 2550), "not_captured_here", BreakClass.NEEDS_OPERATOR),
        (row("fee", "fee_1", 0, -250, order=""), "fee_only", BreakClass.AUTO_FIXED),
        (
            row("charge", "pay_1", 2550, booked_at=AT + timedelta(days=4)),
            "settled_late",
            BreakClass.AUTO_FIXED,
        ),
        (row("refund", "re_9", -500), "refund_unknown", BreakClass.NEEDS_OPERATOR),
        (row("refund", "re_1", -499), "amount_differs", BreakClass.NEEDS_OPERATOR),
        (row("dispute", "dp_9", -700, -1500), "dispute_unknown", BreakClass.NEEDS_OPERATOR),
        (row("dispute_reversal", "dp_2", 300), "reversal_unexpected", BreakClass.NEEDS_OPERATOR),
        (
            row("charge", "pay_1", 2550, currency="USD"),
            "currency_differs",
            BreakClass.NEEDS_OPERATOR,
        ),
        (row("adjustment", "adj_1", -10, order=""), "adjustment", BreakClass.NEEDS_OPERATOR),
    ],
)
def test_each_planted_difference_is_a_break_of_its_class(
    planted: ReportRow, kind: str, klass: BreakClass
) -> None:
    assert found([planted]) == [(kind, klass)]


def test_a_payout_that_is_not_its_batch_is_unexplained() -> None:
    rows = [row("charge", "pay_1", 2550, -61), row("payout", "po_1", -2480, order="")]
    assert found(rows)[-1] == ("payout_mismatch", BreakClass.UNEXPLAINED)


def test_a_batch_keeps_auto_fixed_breaks_resolved_and_an_operator_resolves_the_rest() -> None:
    rows = [row("fee", "fee_1", 0, -250, order=""), row("charge", "pay_9", 4200)]
    findings = match(rows, {ORDER: FACTS}, LATE)
    batch = SettlementBatch.import_rows("simulator", "batch_1", "d1", rows, findings)
    assert [b["status"] for b in batch.breaks.values()] == ["resolved", "open"]
    assert batch.summary()["open_breaks"] == {"unexplained": 1}
    assert batch.same_as("d1") and not batch.same_as("d2")
    batch.resolve_break("simulator:batch_1:1", "written_off", "a test charge", "ops-1")
    assert batch.open_breaks() == []
    with pytest.raises(IllegalTransition):
        batch.resolve_break("simulator:batch_1:1", "written_off", "again", "ops-1")


HEADER = b"batch_id,booked_at,type,psp_reference,merchant_reference,currency,gross,fee,net\n"


def test_a_report_reads_back_row_by_row() -> None:
    rows = parse(HEADER + b"batch_1,2026-11-27T10:00:00Z,charge,pay_1,o1,EUR,2550,-61,2489\n")
    assert rows == [ReportRow("batch_1", AT, "charge", "pay_1", "o1", "EUR", 2550, -61, 2489)]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"a,b\n", "header"),
        (HEADER + b"batch_1,2026-11-27T10:00:00Z,charge,pay_1,o1,EUR,2550,-61,2000\n", "net"),
        (HEADER + b"batch_1,yesterday,charge,pay_1,o1,EUR,1,0,1\n", "booked_at"),
        (HEADER + b"batch_1,2026-11-27T10:00:00,charge,pay_1,o1,EUR,1,0,1\n", "booked_at"),
        (HEADER + b"batch_1,2026-11-27T10:00:00Z,gift,pay_1,o1,EUR,1,0,1\n", "type"),
        (HEADER + b"batch_1,2026-11-27T10:00:00Z,charge,pay_1,o1,EUR,1e3,0,1e3\n", "gross"),
        (
            HEADER + b"batch_1,2026-11-27T10:00:00Z,charge,pay_1,o1,EUR,99999999999999999999,0,1\n",
            "gross",
        ),
        (HEADER + b"batch_1,2026-11-27T10:00:00Z,charge,pay 1,o1,EUR,1,0,1\n", "psp_reference"),
        (HEADER + b"batch_1,2026-11-27T10:00:00Z,charge,pay_1,o1,eur,1,0,1\n", "currency"),
        (HEADER + b"batch_1,2026-11-27T10:00:00Z,charge,pay_1,o1,EUR,1,0\n", "row"),
        (HEADER + b"batch_1,2026-11-27T10:00:00Z,charge,pay_\x00,o1,EUR,1,0,1\n", "file"),
        (HEADER + b"\xff\xfe", "file"),
    ],
)
def test_a_report_we_cannot_book_faithfully_is_refused_whole(data: bytes, field: str) -> None:
    with pytest.raises(InvalidReport) as refused:
        parse(data)
    assert refused.value.field == field


def balances(postings: list[Posting]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for p in postings:
        totals[p.account] = totals.get(p.account, 0) + p.amount
    return totals


def test_a_matched_batch_pays_the_bank_books_the_fees_and_clears_the_receivable() -> None:
    rows = [
        row("charge", "pay_1", 2550, -61),
        row("refund", "re_1", -500),
        row("dispute", "dp_1", -1000, -1500),
        row("fee", "fee_1", 0, -250, order=""),
    ]
    rows.append(row("payout", "po_1", -sum(r.net for r in rows), order=""))  # the batch owes 761
    postings = settlement_postings(rows, broken=set())
    assert sum(p.amount for p in postings) == 0
    assert balances(postings) == {
        "bank:EUR": -761,  # this batch took money from the bank: its payout was negative
        "psp_fees": 311,  # the charge's fee and the fee-only row; the dispute's was booked
        "psp_receivable": 450,  # -(2550 - 500 - 2500): what our books already held
    }


def test_what_a_break_moved_waits_in_suspense() -> None:
    rows = [row("charge", "pay_1", 2550, -61), row("charge", "pay_9", 4200, -84)]
    rows.append(row("payout", "po_1", -sum(r.net for r in rows), order=""))
    postings = settlement_postings(rows, broken={1})
    assert sum(p.amount for p in postings) == 0
    assert balances(postings) == {
        "bank:EUR": 6605,
        "psp_fees": 145,
        "psp_receivable": -2550,
        "settlement_suspense": -4200,
    }


def test_a_batch_that_comes_back_changed_is_reported_and_holds_up_no_other() -> None:
    """A PSP that changed a settled batch: the batch stays as first imported, is named in
    `changed`, and the newer batch behind it in the same report is imported all the same
    (it used to stop the import there, so the scheduled pass failed every time)."""
    orders = PaymentsApp(
        {"PERSISTENCE_MODULE": "eventsourcing.popo"}, psp=FakePSP(), config=PaymentsConfig()
    )
    books = ReconciliationApp({"PERSISTENCE_MODULE": "eventsourcing.popo"}, orders, LATE)
    fee = row("fee", "fee_1", 0, -250, order="")
    first = books.import_rows("simulator", [fee])
    assert first.new == ["batch_1"] and first.changed == []
    changed = row("fee", "fee_1", 0, -260, order="")
    newer = row("fee", "fee_2", 0, -100, order="", batch_id="batch_2")
    again = books.import_rows("simulator", [changed, newer])
    assert again.changed == ["batch_1"] and again.new == ["batch_2"] and again.known == []
    kept = {b.batch_id: [r["fee"] for r in b.rows] for b in books.batches()}
    assert kept == {"batch_1": [-250], "batch_2": [-100]}
    same = books.import_rows("simulator", [fee, newer])
    assert same.known == ["batch_1", "batch_2"] and same.changed == same.new == []


class RacedBooks(ReconciliationApp):
    """Another import commits `racing` between this one's lookup of a batch and its save."""

    racing: list[ReportRow] | None = None

    def _batch(self, batch_id: uuid.UUID) -> SettlementBatch | None:
        found = super()._batch(batch_id)
        if found is None and self.racing:
            rows, self.racing = self.racing, None
            self.import_rows("simulator", rows)
        return found


@pytest.mark.parametrize(("theirs", "ours_is"), [(-250, "known"), (-260, "changed")])
def test_an_import_that_loses_the_race_for_a_batch_compares_the_copies(
    theirs: int, ours_is: str
) -> None:
    orders = PaymentsApp(
        {"PERSISTENCE_MODULE": "eventsourcing.popo"}, psp=FakePSP(), config=PaymentsConfig()
    )
    books = RacedBooks({"PERSISTENCE_MODULE": "eventsourcing.popo"}, orders, LATE)
    books.racing = [row("fee", "fee_1", 0, theirs, order="")]
    imported = books.import_rows("simulator", [row("fee", "fee_1", 0, -250, order="")])
    assert getattr(imported, ours_is) == ["batch_1"] and imported.new == []
