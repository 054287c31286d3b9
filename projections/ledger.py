"""The ledger: double-entry postings per capture and refund, and running balances."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import ClassVar

from adapters.db import Tx
from domain.ledger import postings_for
from projections.base import OrderChange, Projection


class LedgerProjection(Projection):
    name = "ledger"
    tables: ClassVar[dict[str, str]] = {
        "ledger_entries": """
            CREATE TABLE IF NOT EXISTS {table} (
                order_id TEXT NOT NULL,
                version BIGINT NOT NULL,
                line INTEGER NOT NULL,
                account TEXT NOT NULL,
                currency TEXT NOT NULL,
                amount BIGINT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (order_id, version, line)
            );
            DROP INDEX IF EXISTS {table}_by_account;
            CREATE INDEX IF NOT EXISTS {table}_by_account_time
                ON {table} (account, at, order_id, version, line)
        """,
        "ledger_balances": """
            CREATE TABLE IF NOT EXISTS {table} (
                account TEXT NOT NULL,
                currency TEXT NOT NULL,
                balance BIGINT NOT NULL,
                PRIMARY KEY (account, currency)
            )
        """,
    }

    totals: dict[tuple[str, str], int] | None = None
    """While set (a build from zero, bulk.py), balances are added up here, not written: the
    processes of a build would otherwise queue for the same balance rows."""

    def apply(self, tx: Tx, changes: Sequence[OrderChange]) -> None:
        entries = []
        totals: dict[tuple[str, str], int] = defaultdict(int)
        for change in changes:
            for _, event in change.events:
                postings = postings_for(event, change.order.currency)
                at = event.timestamp.timestamp() if postings else 0.0
                key = (change.key, event.originator_version)
                for line, p in enumerate(postings):
                    entries.append((*key, line, p.account, p.currency, p.amount, at))
                    totals[p.account, p.currency] += p.amount
        tx.append(
            self.t("ledger_entries"),
            ("order_id", "version", "line", "account", "currency", "amount", "at"),
            entries,
        )
        if self.totals is None:
            self.add_balances(tx, totals)
            return
        for account, amount in totals.items():  # only once the entries are written
            self.totals[account] = self.totals.get(account, 0) + amount

    def add_balances(self, tx: Tx, totals: dict[tuple[str, str], int]) -> None:
        """Add `totals` ((account, currency) -> amount) to the balances."""
        tx.insert(
            f"INSERT INTO {self.t('ledger_balances')} (account, currency, balance)",
            sorted((account, currency, total) for (account, currency), total in totals.items()),
            "ON CONFLICT (account, currency) DO UPDATE SET "
            f"balance = {self.t('ledger_balances')}.balance + excluded.balance",
        )
