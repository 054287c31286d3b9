"""Scheduled reconciliation: every PAYMENTS_RECONCILE_INTERVAL_S, pull the PSP's settlement
report for the last days and import it, as `payments reconcile` does (a batch imported
before changes nothing). Open breaks are logged; operators resolve them."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from adapters.settlement_report import parse
from app.reconciliation import CHANGED, ReconciliationApp
from bootstrap.settings import Settings
from bootstrap.settlement import fetch_report

log = logging.getLogger("payments.reconcile")


class ReconcileWorker:
    def __init__(self, settings: Settings, reconciliation: ReconciliationApp) -> None:
        self.settings = settings
        self.reconciliation = reconciliation

    def run_forever(self, stop: threading.Event) -> None:
        """A pass every interval (the first one interval after the start)."""
        interval = self.settings.reconcile_interval_s
        while not stop.wait(interval):
            try:
                self.run_once()
            except Exception as error:  # the next pass tries again; nothing was half-imported
                log.warning("reconciliation failed: %s", error)

    def run_once(self) -> int:
        """Import the report; the number of breaks open afterwards."""
        rows = parse(fetch_report(self.settings, None, datetime.now(UTC)))
        imported = self.reconciliation.import_rows(self.settings.psp, rows)
        for batch_id in imported.changed:  # every pass while the report holds it
            log.error("settlement batch %s %s", batch_id, CHANGED)
        open_breaks = len(self.reconciliation.breaks("open"))
        log.info(
            "reconciled %d rows: %d new batches, %d open breaks",
            imported.rows,
            len(imported.new),
            open_breaks,
        )
        if open_breaks:
            log.warning("%d reconciliation breaks are open", open_breaks)
        return open_breaks
