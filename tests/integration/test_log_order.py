"""No reader of the event log ever skips an event (PostgreSQL).

Inserts take no table lock: transactions commit in any order, so an event with a lower
position can become visible after one with a higher position. Readers therefore stop at the
oldest transaction still running (adapters/event_store.py, projections/log.py). These tests
pin the rule down with scripted interleavings, then storm it: writers in threads and in
another process, committing in any order, rolling back, holding transactions open, against
the projection runner and the audit, which must account for every committed event."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from eventsourcing.persistence import PersistenceError

from adapters.db import Database
from bootstrap.composition import Container, build
from bootstrap.migrate import migrate
from bootstrap.settings import Settings
from projections.audit import Auditor
from projections.log import EventLog
from projections.runner import wait_for
from tests.integration import log_writers
from tests.integration.conftest import FAST

STORM_S = 4.0


@pytest.fixture
def store(postgres_url: str, simulator_server: object) -> Iterator[Container]:
    settings = Settings(database_url=postgres_url, **FAST)
    migrate(settings)
    container = build(settings, psp_url=simulator_server.url)  # type: ignore[attr-defined]
    yield container
    container.close()


def positions(container: Container) -> list[int]:
    """Every settled position, once nothing is held back any more: other tests' writes on
    the same server hold readers back for a moment too (the rule is server-wide)."""
    deadline = time.monotonic() + 10
    while True:
        with container.db.transaction() as tx:
            rows, held = container.runner.log.read_settled(tx, 0, 1000)
        if not held or time.monotonic() > deadline:
            return [p for p, _, _ in rows]
        time.sleep(0.01)


def held_back(container: Container) -> bool:
    """Nothing readable yet, though the log holds committed events."""
    with container.db.transaction() as tx:
        rows, held = container.runner.log.read_settled(tx, 0, 1000)
    return held and rows == []


def test_a_later_commit_waits_for_an_earlier_insert_still_running(
    store: Container, postgres_url: str
) -> None:
    with log_writers.connect(postgres_url) as first:
        first.execute("BEGIN")
        early = log_writers.insert_order(first, store.app)  # not committed yet
        late = log_writers.insert_order_committed(store.app)
        assert late > early
        naive = store.db.one(f"SELECT notification_id FROM {store.db.events_table}")  # noqa: S608
        assert [late, late + 1] <= sorted(r[0] for r in naive)  # what a plain read would take
        assert held_back(store)  # `early` may still commit below `late`
        first.execute("COMMIT")
    assert positions(store) == [early, early + 1, late, late + 1]


def test_a_rolled_back_insert_leaves_a_gap_that_never_blocks(
    store: Container, postgres_url: str
) -> None:
    with log_writers.connect(postgres_url) as first:
        first.execute("BEGIN")
        gone = log_writers.insert_order(first, store.app)
        late = log_writers.insert_order_committed(store.app)
        assert held_back(store)
        first.execute("ROLLBACK")
    assert gone not in positions(store)
    assert positions(store) == [late, late + 1]


def test_any_open_write_transaction_holds_the_log_and_is_watched(
    store: Container, postgres_url: str
) -> None:
    """The risk of the rule: a transaction that wrote anything (any table, any database of
    the server) holds back every reader until it ends. /metrics shows for how long."""
    with log_writers.connect(postgres_url) as other:
        other.execute("BEGIN")
        other.execute("CREATE TEMP TABLE scratch (x int)")
        late = log_writers.insert_order_committed(store.app)
        assert held_back(store)
        time.sleep(0.2)
        assert log_writers.held_seconds(store) >= 0.2
        other.execute("COMMIT")
    assert positions(store) == [late, late + 1]


def test_inserts_sharing_a_transaction_take_rising_positions(
    store: Container, postgres_url: str
) -> None:
    with log_writers.connect(postgres_url) as conn:
        conn.execute("BEGIN")
        first = log_writers.insert_order(conn, store.app)
        second = log_writers.insert_order(conn, store.app)
        conn.execute("COMMIT")
    assert positions(store) == [first, first + 1, second, second + 1]
    assert second == first + 2


def test_a_store_restored_elsewhere_refuses_writes_until_migrated_then_rises_on(
    store: Container, postgres_url: str
) -> None:
    """On another server transaction ids start again lower: the insert refuses to write
    until `payments migrate` starts a new epoch above every position already taken."""
    before = log_writers.insert_order_committed(store.app)
    with log_writers.connect(postgres_url) as conn:  # as if the ids had gone backwards
        conn.execute(
            "UPDATE payments_events_epochs SET start_xid = "
            "(pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000000)::text::xid8"
        )
    with pytest.raises(PersistenceError, match="run payments migrate"):
        log_writers.insert_order_committed(store.app)
    migrate(store.settings)
    after = log_writers.insert_order_committed(store.app)
    assert after > before + 1
    assert positions(store) == [before, before + 1, after, after + 1]


def test_a_storm_of_writers_in_any_commit_order_loses_nothing(
    store: Container, postgres_url: str
) -> None:
    stop = threading.Event()
    runner_stop = threading.Event()
    runner = threading.Thread(target=store.runner.run_forever, args=(runner_stop, 0.05))
    runner.start()
    follower = Follower(store.db, store.runner.log)
    threads = [threading.Thread(target=follower.follow, args=(stop,))]
    threads += [
        threading.Thread(target=log_writers.storm, args=(postgres_url, stop, seed))
        for seed in range(4)
    ]
    threads += [threading.Thread(target=checkouts, args=(store, stop))]
    audits: list[bool] = []
    threads += [threading.Thread(target=audit_while, args=(store, stop, audits))]
    spawn = multiprocessing.get_context("spawn")
    other_process = spawn.Process(target=log_writers.storm_for, args=(postgres_url, STORM_S, 99))
    other_process.start()
    for thread in threads:
        thread.start()
    time.sleep(STORM_S)
    stop.set()
    other_process.join(60)
    for thread in threads:
        thread.join(60)
    assert other_process.exitcode == 0
    try:
        head = log_writers.head(store.db)
        assert wait_for(store.runner, head, timeout_s=60)
    finally:
        runner_stop.set()
        runner.join(30)
    table = store.db.events_table
    committed = [r[0] for r in store.db.one(f"SELECT notification_id FROM {table} ORDER BY 1")]  # noqa: S608
    follower.drain()
    assert follower.seen == committed  # every event, once, in position order
    assert len(committed) > 200
    stored = store.db.one(f"SELECT DISTINCT originator_id FROM {table}")  # noqa: S608
    orders = {str(uuid.UUID(str(r[0]))) for r in stored}
    assert {r[0] for r in store.db.one("SELECT order_id FROM order_view")} == orders
    report = Auditor(store.runner.log, store.app.config.timing).run()
    assert report.ok, report.violations[:5]
    assert audits and all(audits)


class Follower:
    """Follows the log as the runner does, in small batches, keeping every position."""

    def __init__(self, db: Database, log: EventLog) -> None:
        self.db = db
        self.log = EventLog(db, log.mapper)
        self.seen: list[int] = []

    def follow(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._batch(random.randint(1, 20))

    def drain(self) -> None:
        while self._batch(1000):
            time.sleep(0.01)

    def _batch(self, limit: int) -> bool:
        """One batch; whether there may be more."""
        after = self.seen[-1] if self.seen else 0
        with self.db.transaction() as tx:
            rows, held = self.log.read_settled(tx, after, limit)
        self.seen += [p for p, _, _ in rows]
        return bool(rows) or held


def checkouts(store: Container, stop: threading.Event) -> None:
    """The application's own saves (autocommit inserts), as the API makes them."""
    while not stop.is_set():
        log_writers.insert_order_committed(store.app)


def audit_while(store: Container, stop: threading.Event, results: list[bool]) -> None:
    """Audits during the storm: each judges every read model at its own position."""
    while not stop.is_set():
        results.append(Auditor(store.runner.log, store.app.config.timing).run().ok)
        time.sleep(0.3)
