"""The audit's checks: invariants of each replayed order, and read models against the replay."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from adapters.db import Database, Tx
from domain.ledger import Posting
from domain.order import PaymentOrder
from domain.worklist import Work
from projections.base import OrderChange
from projections.failures import challenge_of, failure_of
from projections.orders import attempt_rows, dispute_rows, order_row
from projections.report import Report

_SUCCESSES = {"Authorized", "Captured", "Voided", "Refunded"}


def audit_history(
    order_id: UUID,
    history: list[tuple[int, Any]],
    order: PaymentOrder,
    report: Report,
    postings: list[list[Posting]],
) -> None:
    """Invariants every order must satisfy, whatever the read models say; `order` is the
    history replayed, `postings` each event's postings (domain.ledger.postings_for)."""
    events = [e for _, e in history]
    versions = [e.originator_version for e in events]
    report.checked["version_order"] += 1
    if versions != list(range(1, len(versions) + 1)):
        report.violate("version_order", order_id, f"versions {versions[:10]}...")
    positions = [p for p, _ in history]
    report.checked["log_order"] += 1
    if positions != sorted(positions):
        report.violate("log_order", order_id, "a later version was logged before an earlier one")
    _check_order(order_id, order, report)
    _check_postings(order_id, events, postings, report)
    _check_psp_keys(order_id, events, report)


def _check_order(order_id: UUID, order: PaymentOrder, report: Report) -> None:
    report.checked["split_sums"] += 1
    if sum(s.gross for s in order.splits) != order.amount or any(
        s.platform_fee + s.payout != s.gross for s in order.splits
    ):
        report.violate("split_sums", order_id, "the split does not sum to the amount")
    for call in order.calls():
        declined = getattr(call, "status", None) == "declined"
        if call.failed or declined:
            report.checked["failure_reasons"] += 1
            if not (call.failure_code and call.failure_message):
                report.violate(
                    "failure_reasons", order_id, f"{call.kind} {call.number} has no reason"
                )
    report.checked["refunds_within_captures"] += 1
    for captured, refunded in zip(order.captured, order.refunded, strict=True):
        if refunded.gross > captured.gross or refunded.payout > captured.payout:
            report.violate("refunds_within_captures", order_id, f"seller {captured.seller_id}")


def _check_postings(
    order_id: UUID, events: list[Any], postings_of: list[list[Posting]], report: Report
) -> None:
    for event, postings in zip(events, postings_of, strict=True):
        if not postings:
            continue
        report.checked["posting_sets_zero"] += 1
        if sum(p.amount for p in postings) != 0:
            report.violate("posting_sets_zero", order_id, f"version {event.originator_version}")
        for posting in postings:
            report.ledger[posting.account, posting.currency] += posting.amount


def _check_psp_keys(order_id: UUID, events: list[Any], report: Report) -> None:
    """No PSP call (one idempotency key) succeeds twice."""
    successes: Counter[tuple[str, int]] = Counter()
    for event in events:
        name = type(event).__name__
        if name not in _SUCCESSES:
            continue
        operation = getattr(event, "operation", None)
        key = ("authorize", event.attempt) if operation is None else ("operation", operation)
        successes[key] += 1
    report.checked["psp_key_once"] += len(successes)
    for key, count in successes.items():
        if count > 1:
            report.violate("psp_key_once", order_id, f"{key[0]} {key[1]} succeeded {count} times")


_BY_ORDER = {
    "order_view": "SELECT * FROM order_view WHERE order_id {fragment}",
    "attempt_view": "SELECT order_id, number, status, failure_code, updated_at FROM attempt_view "
    "WHERE order_id {fragment} ORDER BY order_id, number",
    "work_queue": "SELECT order_id, due_at, task FROM work_queue WHERE order_id {fragment}",
    "ledger_entries": "SELECT order_id, version, line, account, currency, amount "
    "FROM ledger_entries WHERE order_id {fragment} ORDER BY order_id, version, line",
    "failure_log": "SELECT order_id, version, kind, event, number, code, message FROM failure_log "
    "WHERE order_id {fragment} ORDER BY order_id, version",
    "dispute_view": "SELECT dispute_id, order_id, status, amount, currency, reason, "
    "evidence_due_by, updated_at FROM dispute_view "
    "WHERE order_id {fragment} ORDER BY order_id, dispute_id",
    "challenge_log": "SELECT order_id, version, attempt, outcome FROM challenge_log "
    "WHERE order_id {fragment} ORDER BY order_id, version",
}
TABLES = tuple(_BY_ORDER)
"""The read-model tables the audit compares with the replay, each read a chunk of orders at
a time by their ids: `order_view` first, then the others in this order."""


@dataclass
class ReadModels:
    """The read-model rows of one chunk of orders."""

    orders: dict[str, tuple[Any, ...]]
    attempts: dict[str, list[tuple[Any, ...]]]
    work: dict[str, tuple[float, str]]
    ledger: dict[str, list[tuple[Any, ...]]]
    failures: dict[str, list[tuple[Any, ...]]]
    disputes: dict[str, list[tuple[Any, ...]]]
    challenges: dict[str, list[tuple[Any, ...]]]

    @classmethod
    def load(cls, db: Database, tx: Tx, order_ids: list[str]) -> ReadModels:
        """The rows of `order_ids` (one chunk: ids next to each other in the store's order).

        They are read as one range of ids, from the least to the greatest, when every order
        has its `order_view` row in that range: scanning a range cost the server about 3 µs
        per event less than probing each table's index once per id, of 9-11 in all
        (docs/performance.md, issue 13's sixteenth slice). Whether a range holds all of the
        chunk's rows depends on how the database orders text; every id found in the range
        proves its own place there, in every table alike. Otherwise (an order without its
        row yet, or a collation that orders ids apart) they are read by the list of ids.
        Rows of ids outside the chunk that a range takes in are never looked up."""

        def read(table: str, where: tuple[str, list[Any]]) -> list[tuple[Any, ...]]:
            fragment, params = where
            return tx.execute(_BY_ORDER[table].format(fragment=fragment), params)

        by_range = "BETWEEN %s AND %s", _bounds(order_ids)
        orders = {r[0]: r for r in read("order_view", by_range)}
        where = by_range
        if not all(key in orders for key in order_ids):
            where = db.in_list(order_ids)
            orders = {r[0]: r for r in read("order_view", where)}
        rows = {table: read(table, where) for table in TABLES if table != "order_view"}
        return cls(
            orders=orders,
            attempts=_grouped(rows["attempt_view"]),
            work={r[0]: (float(r[1]), r[2]) for r in rows["work_queue"]},
            ledger=_grouped(rows["ledger_entries"]),
            failures=_grouped(rows["failure_log"]),
            disputes=_grouped([(r[1], r[0], *r[2:]) for r in rows["dispute_view"]]),
            challenges=_grouped(rows["challenge_log"]),
        )

    # Each check takes the order id as the read models store it (`key`, str(order_id)),
    # made once per order: a UUID's str costs about a microsecond, and an order's checks
    # needed about a dozen.

    def check_order(
        self, order_id: UUID, key: str, expected: PaymentOrder | None, report: Report
    ) -> None:
        report.checked["order_rows"] += 1
        row = self.orders.get(key)
        if expected is None:
            if row is not None:
                report.violate("order_rows", order_id, "a row for events not yet projected")
            return
        report.expected_rows += 1
        change = OrderChange(order_id, expected, ())
        if row is None or not _same_row(row, order_row(change)):
            report.violate("order_rows", order_id, "the order_view row differs from the replay")
        if [tuple(r) for r in self.attempts.get(key, [])] != attempt_rows(change):
            report.violate("order_rows", order_id, "the attempt_view rows differ from the replay")
        disputes = sorted((r[1], r[0], *r[2:]) for r in dispute_rows(change))
        if [tuple(r) for r in self.disputes.get(key, [])] != disputes:
            report.violate("order_rows", order_id, "the dispute_view rows differ from the replay")

    def check_work(self, key: str, expected: Work | None, report: Report) -> None:
        report.checked["work_queue"] += 1
        row = self.work.get(key)
        wanted = (expected.due_at.timestamp(), expected.task.value) if expected else None
        if row != wanted:
            report.violate("work_queue", key, f"queue has {row}, replay says {wanted}")

    def check_ledger(
        self, key: str, events: list[tuple[Any, list[Posting]]], report: Report
    ) -> None:
        """`events`: those the ledger has seen that post, each with its postings."""
        expected = []
        for event, postings in events:
            for line, p in enumerate(postings):
                expected.append(
                    (key, event.originator_version, line, p.account, p.currency, p.amount)
                )
                report.projected_ledger[p.account, p.currency] += p.amount
        report.checked["ledger_entries"] += 1
        if [tuple(r) for r in self.ledger.get(key, [])] != expected:
            report.violate("ledger_entries", key, "ledger entries differ from the replay")

    def check_failures(
        self, key: str, events: list[tuple[int, Any]], order: PaymentOrder, report: Report
    ) -> None:
        expected, challenges = [], []
        for _, event in events:
            row = (key, event.originator_version)
            if failure := failure_of(event):
                expected.append((*row, *failure))
            if challenge := challenge_of(event, order):
                challenges.append((*row, *challenge))
        report.checked["failure_log"] += 1
        if [tuple(r) for r in self.failures.get(key, [])] != expected:
            report.violate("failure_log", key, "the failure log differs from the replay")
        if [tuple(r) for r in self.challenges.get(key, [])] != challenges:
            report.violate("failure_log", key, "the challenge log differs from the replay")


def compare_balances(tx: Tx, report: Report) -> None:
    rows = tx.execute("SELECT account, currency, balance FROM ledger_balances")
    stored = {(a, c): int(b) for a, c, b in rows if int(b)}
    expected = {k: v for k, v in report.projected_ledger.items() if v}
    report.checked["ledger_balances"] += 1
    if stored != expected:
        report.violate("ledger_balances", "-", f"balances {stored} != replayed {expected}")


def orphan_rows(tx: Tx, db: Database, report: Report) -> None:
    """Rows for orders the store does not have."""
    count = int(tx.execute("SELECT COUNT(*) FROM order_view")[0][0])
    report.checked["orphan_rows"] += 1
    if count != report.expected_rows:
        report.violate(
            "orphan_rows", "-", f"order_view has {count} rows, the replay {report.expected_rows}"
        )


def _bounds(keys: list[str]) -> list[str]:
    """The least and the greatest of `keys` ("" and "" for none)."""
    return [min(keys, default=""), max(keys, default="")]


def _grouped(rows: list[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    grouped: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        grouped[row[0]].append(row)
    return grouped


def _same_row(stored: tuple[Any, ...], expected: tuple[Any, ...]) -> bool:
    """Whether an order_view row equals the replay's; the documents are compared as text
    first (the projection writes what the replay writes) and parsed only when the text
    differs, since key order and spacing do not matter."""
    if tuple(stored[:-1]) != expected[:-1]:
        return False
    return bool(stored[-1] == expected[-1] or json.loads(stored[-1]) == json.loads(expected[-1]))
