"""Our own rates: projection catch-up from zero, audit replay, and lag under load."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from adapters.db import Database
from bootstrap import runtime
from bootstrap.audit_pool import builders_for, helpers_for
from bootstrap.read_side import open_read_side
from bootstrap.settings import Settings
from projections import bulk, positions
from projections.audit import Auditor
from projections.catalog import NAMES, all_projections
from projections.log import events_after
from projections.rebuild import reset_copy

SUFFIX = "__bench"


def catch_up_rate(settings: Settings) -> tuple[int, float]:
    """(events, seconds) to build every read model from scratch as `payments projections
    rebuild` does (projections/bulk.py, with the processes it would use), into copies."""
    store = open_read_side(settings, pool_size=4)
    db = store.db
    projections = all_projections(store.timing, SUFFIX)
    started = time.perf_counter()
    for projection in projections:
        reset_copy(db, projection)
    with db.read() as tx:
        helpers = builders_for(settings, events_after(db, tx, 0))
    with runtime.batch_heap():  # as `payments projections rebuild` runs it
        events, _ = bulk.build(db, store.log, projections, helpers)
    seconds = time.perf_counter() - started
    with db.transaction() as tx:
        for projection in projections:
            for table in projection.tables:
                tx.execute(f"DROP TABLE {projection.t(table)}")
            positions.forget(tx, projection.position_name)
    store.close()
    return events, seconds


def audit_rate(settings: Settings) -> tuple[int, float, bool]:
    """(events, seconds, ok) of a full `payments audit`, with the processes it would use."""
    store = open_read_side(settings, pool_size=4)
    with store.db.read() as tx:
        helpers = helpers_for(settings, events_after(store.db, tx, 0))
    with runtime.batch_heap():  # as `payments audit` runs it
        report = Auditor(store.log, store.timing).run(helpers=helpers)
    store.close()
    return report.events, report.seconds, report.ok


@dataclass
class LagSampler:
    """Samples how many events the read models trail the log by, while load runs."""

    db: Database
    samples: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> LagSampler:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        lowest, names = positions.lowest_sql(self.db, NAMES)
        while not self.stop.wait(0.25):
            with self.db.read() as tx:
                low = tx.execute(lowest, names)
                self.samples.append(events_after(self.db, tx, int(low[0][0] or 0)))
