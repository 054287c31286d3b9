"""The simulated PSP's settlement: every balance movement, settled in batches less fees, and
the report a merchant downloads (modelled on Stripe's itemized payout reconciliation report
and Adyen's settlement details report).

A movement (a charge, a refund, a dispute and its reversal, a fee) becomes available
`settlement_delay_s` after it happened and falls into the batch of that moment; batches are
`settlement_batch_s` long (a day by default) and each closes with a payout of its net to the
merchant's bank. Only closed batches are reported. Amounts are minor units, signed: money
to the merchant positive.

Quirks real reports have can be planted (`plant`): a charge settling into the next batch, a
fee-only row, a row for a payment the merchant never heard of, an amount that differs. A
chargeback after payout needs no planting: a dispute opened after its charge's batch closed
lands in a later batch.
"""

from __future__ import annotations

import csv
import io
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from adapters.settlement_report import COLUMNS

Quirk = Literal["next_batch", "fee_only", "unknown_payment", "amount_differs"]


@dataclass(frozen=True)
class Row:
    batch_id: str
    booked_at: float
    type: str
    psp_reference: str
    merchant_reference: str
    currency: str
    gross: int
    fee: int

    @property
    def net(self) -> int:
        return self.gross + self.fee


@dataclass
class Movement:
    at: float
    type: str
    psp_reference: str
    merchant_reference: str
    currency: str
    gross: int
    fee: int
    late: bool = False
    """Planted: settles one batch later than it should."""


@dataclass
class SettlementBooks:
    """The PSP's balance movements and how they settle."""

    movements: list[Movement] = field(default_factory=list)
    late_payments: set[str] = field(default_factory=set)
    differing_payments: set[str] = field(default_factory=set)

    def record(
        self,
        at: float,
        type_: str,
        psp_reference: str,
        merchant_reference: str,
        currency: str,
        gross: int,
        fee: int = 0,
    ) -> None:
        late = psp_reference in self.late_payments and type_ == "charge"
        if type_ == "charge" and psp_reference in self.differing_payments:
            gross += 1  # planted: the bank settled a different amount
        self.movements.append(
            Movement(at, type_, psp_reference, merchant_reference, currency, gross, fee, late)
        )

    def plant(self, quirk: Quirk, at: float, payment: str | None, currency: str) -> str:
        """Plant a quirk; returns the reference it concerns."""
        if quirk == "next_batch" and payment:
            self.late_payments.add(payment)
            for movement in self.movements:
                if movement.psp_reference == payment and movement.type == "charge":
                    movement.late = True
            return payment
        if quirk == "amount_differs" and payment:
            self.differing_payments.add(payment)
            for movement in self.movements:
                if movement.psp_reference == payment and movement.type == "charge":
                    movement.gross += 1
            return payment
        if quirk == "fee_only":
            reference = f"fee_{secrets.token_hex(8)}"
            self.record(at, "fee", reference, "", currency, 0, -250)
            return reference
        reference = f"pay_{secrets.token_hex(12)}"  # unknown_payment
        self.record(at, "charge", reference, f"order-{secrets.token_hex(6)}", currency, 4200, -152)
        return reference

    def rows(self, now: float, delay_s: float, batch_s: float) -> list[Row]:
        """Every row of every batch closed by `now`, payouts included, oldest first."""
        batches: dict[int, list[Row]] = {}
        for m in self.movements:
            index = int((m.at + delay_s) // batch_s) + (1 if m.late else 0)
            booked = max(m.at + delay_s, index * batch_s)
            if m.late:  # well into the next batch: late by half a batch at least
                booked = index * batch_s + batch_s / 2
            row = Row(
                _batch(index),
                booked,
                m.type,
                m.psp_reference,
                m.merchant_reference,
                m.currency,
                m.gross,
                m.fee,
            )
            batches.setdefault(index, []).append(row)
        rows: list[Row] = []
        for index in sorted(batches):
            end = (index + 1) * batch_s
            if end > now:
                continue  # not closed yet: not reported
            batch = sorted(batches[index], key=lambda r: (r.booked_at, r.psp_reference))
            rows += batch
            for currency in sorted({r.currency for r in batch}):
                net = sum(r.net for r in batch if r.currency == currency)
                payout = f"po_{index}_{currency.lower()}"
                rows.append(Row(_batch(index), end, "payout", payout, "", currency, -net, 0))
        return rows


def _batch(index: int) -> str:
    return f"batch_{index}"


def report(
    books: SettlementBooks, start: float, end: float, now: float, delay_s: float, batch_s: float
) -> str:
    """The report for [start, end) as CSV: every batch whose payout is booked in the window,
    whole, as a payout reconciliation report is. Cut by the rows' own times, a batch at
    either edge came in part: without its payout when it closed after the reader asked for
    `end` (booked at the batch's end), or without its first rows at `start`; and a reader
    imports a batch once, as it came (a batch seen again must be the same)."""
    rows = books.rows(min(now, end), delay_s, batch_s)
    paid = {r.batch_id for r in rows if r.type == "payout" and start <= r.booked_at < end}
    return report_csv([r for r in rows if r.batch_id in paid])


def report_csv(rows: list[Row]) -> str:
    """The rows as CSV, DESIGN.md's columns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        booked = datetime.fromtimestamp(r.booked_at, UTC).isoformat().replace("+00:00", "Z")
        writer.writerow(
            (
                r.batch_id,
                booked,
                r.type,
                r.psp_reference,
                r.merchant_reference,
                r.currency,
                r.gross,
                r.fee,
                r.net,
            )
        )
    return out.getvalue()


def charge_fee(amount: int, fee_bps: int, fee_fixed: int) -> int:
    """The PSP's fee on a charge, negative (money away from the merchant)."""
    return -(amount * fee_bps // 10_000 + fee_fixed)
