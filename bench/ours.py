"""Our own rates: projection catch-up from zero, audit replay, and lag under load."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg

from adapters.db import Database
from adapters.event_store import settled_below_sql
from bench.stack import database_url, drop_database, new_database
from bootstrap import audit_pool, runtime
from bootstrap.audit_pool import builders_for, helpers_for
from bootstrap.read_side import open_read_side
from bootstrap.settings import Settings
from chaos.processes import run_payments
from projections import bulk, positions
from projections.audit import Auditor
from projections.catalog import NAMES, all_projections
from projections.log import events_after
from projections.rebuild import reset_copy

SUFFIX = "__bench"
PREFIX_EVENTS = 60_000
"""Catch-up and audit read a store of this many events in every run (or all the run wrote,
if fewer): how many the load phases write depends on how fast the machine ran them, and
both rates fall as a store outgrows the server's buffers."""
COLUMNS = "notification_id, originator_id, originator_version, topic, state"


@contextmanager
def prefix_store(source: Settings, admin_url: str, events: int) -> Iterator[Settings]:
    """A database of its own holding the first `events` settled events of `source`'s log
    (each order's history up to there: a store as it stood at that moment), migrated and
    with its read models rebuilt, dropped afterwards. The helpers' fork server starts
    first, as `payments audit` and `payments projections rebuild` start it first thing
    (bootstrap/audit_pool.warm), so that it has imported the read side by the time the
    first round is timed: started inside that round, it cost the catch-up 0.4-0.5 s of
    about 2 (docs/performance.md, issue 13's fifteenth slice)."""
    name = new_database(admin_url, "_prefix")
    url = database_url(admin_url, name)
    audit_pool.warm(Settings(database_url=url))
    try:
        _payments(url, "migrate")
        _copy_prefix(source.database_url, url, events)
        _payments(url, "projections", "rebuild")
        yield Settings(database_url=url)
    finally:
        drop_database(admin_url, name)


def _payments(url: str, *args: str) -> None:
    done = run_payments({"database_url": url}, *args)
    if done.returncode != 0:
        raise RuntimeError(f"payments {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")


def _copy_prefix(source_url: str, target_url: str, events: int) -> None:
    """The events, as stored (binary COPY), and the source's epochs, so that positions read
    as settled in the copy as they did in the source (the server's transaction ids are the
    same for both databases)."""
    with psycopg.connect(source_url) as source, psycopg.connect(target_url) as target:
        settled = settled_below_sql("payments_events")
        query = (
            f"COPY (SELECT {COLUMNS} FROM payments_events WHERE notification_id < {settled} "  # noqa: S608
            f"ORDER BY notification_id LIMIT {int(events)}) TO STDOUT (FORMAT BINARY)"
        )
        with (
            source.cursor().copy(query) as rows,
            target.cursor().copy(
                f"COPY payments_events ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            for block in rows:
                copy.write(block)
        target.execute("DELETE FROM payments_events_epochs")
        with target.cursor() as cursor:
            epochs = source.execute("SELECT base, start_xid FROM payments_events_epochs")
            cursor.executemany(
                "INSERT INTO payments_events_epochs (base, start_xid) VALUES (%s, %s)",
                epochs.fetchall(),
            )


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
