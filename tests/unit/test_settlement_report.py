"""The simulator's settlement report gives whole batches: every batch whose payout is booked
in the window, and each with all its rows (a reader imports a batch once, as it came)."""

from __future__ import annotations

import csv
import io

from psp.settlement import SettlementBooks, report

BATCH_S = 0.5  # batch 20 runs from 10.0 to 10.5, and its payout is booked at 10.5


def books() -> SettlementBooks:
    kept = SettlementBooks()
    kept.record(10.2, "charge", "pay_1", "order-1", "EUR", 1000, -30)
    kept.record(10.4, "refund", "re_1", "order-1", "EUR", -200)
    return kept


def kinds(text: str) -> list[tuple[str, str]]:
    return [(r["batch_id"], r["type"]) for r in csv.DictReader(io.StringIO(text))]


def test_a_batch_that_closed_after_the_window_is_left_out_whole() -> None:
    """Asked for a window ending at 10.49 but answered at 10.6, the batch has closed: its
    charge and refund were booked inside the window, its payout after it."""
    assert kinds(report(books(), 0, 10.49, 10.6, 0, BATCH_S)) == []


def test_a_batch_whose_payout_is_in_the_window_comes_whole() -> None:
    whole = [("batch_20", "charge"), ("batch_20", "refund"), ("batch_20", "payout")]
    assert kinds(report(books(), 0, 10.6, 10.6, 0, BATCH_S)) == whole
    # its first rows were booked before the window's start: they come with it all the same
    assert kinds(report(books(), 10.3, 11.0, 11.0, 0, BATCH_S)) == whole


def test_a_batch_not_closed_yet_or_paid_before_the_window_is_not_reported() -> None:
    assert kinds(report(books(), 0, 11.0, 10.45, 0, BATCH_S)) == []
    assert kinds(report(books(), 10.51, 11.0, 11.0, 0, BATCH_S)) == []
