"""Read models on both stores: batched catch-up, exactly once, rebuilds, and the audit."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import httpx
import pytest

import projections.log
from adapters.db import Database, Tx, open_database
from bootstrap.audit_pool import BuildPool, builders_for
from bootstrap.composition import Container
from bootstrap.settings import Settings
from domain.cart import Checkout, LineItem
from projections import bulk, quarantine
from projections.audit import SLICES, Auditor, slice_bounds
from projections.base import OrderChange, Projection
from projections.bulk import Part
from projections.catalog import all_projections, create_tables
from projections.checks import TABLES
from projections.log import EventLog, events_after
from projections.rebuild import SUFFIX, rebuild, rebuild_all
from projections.runner import ProjectionRunner

ITEMS = (LineItem("seller-a", "mug", 2, 1000), LineItem("seller-b", "tea", 1, 555))


def workload(container: Container, simulator: httpx.Client) -> None:
    """Orders in most states: captured, declined then retried, manual capture with refunds,
    timed out (unknown), canceled."""
    app = container.app

    def place(key: str, method: str = "pm_card_visa", capture: str = "automatic") -> Any:
        checkout = Checkout("buyer-1", "EUR", ITEMS, method, capture)
        return app.place_checkout(checkout, client_id="c1", idempotency_key=key).order

    place("ok-1")
    place("ok-2")
    declined = place("declined", "pm_card_declined")
    app.add_attempt(declined.id, "pm_card_visa")
    manual = place("manual", capture="manual")
    app.capture(manual.id, 2000)
    app.refund(manual.id, 555)
    app.refund(manual.id, 100)
    canceled = place("canceled", capture="manual")
    app.cancel(canceled.id)
    simulator.put("/_control/faults", json={"script": ["timeout"], "hang_ms": 1000})
    place("unknown")


def tables(container: Container, suffix: str = "") -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model row (of the tables with `suffix`), for comparisons."""
    queries = {
        "order_view": "SELECT * FROM order_view ORDER BY order_id",
        "attempt_view": "SELECT * FROM attempt_view ORDER BY order_id, number",
        "failure_log": "SELECT * FROM failure_log ORDER BY order_id, version",
        "ledger_entries": "SELECT * FROM ledger_entries ORDER BY order_id, version, line",
        "ledger_balances": "SELECT * FROM ledger_balances ORDER BY account, currency",
        "work_queue": "SELECT * FROM work_queue ORDER BY order_id",
        "challenge_log": "SELECT * FROM challenge_log ORDER BY order_id, version",
        "dispute_view": "SELECT * FROM dispute_view ORDER BY dispute_id",
        "public_events": "SELECT * FROM public_events ORDER BY position, sub",
    }
    with container.db.read() as tx:
        return {
            name: [tuple(r) for r in tx.execute(sql.replace(f" {name} ", f" {name}{suffix} "))]
            for name, sql in queries.items()
        }


def declared_indexes(projections: Sequence[Projection]) -> set[str]:
    """The secondary indexes the projections declare."""
    return {
        statement.split()[5]  # CREATE INDEX IF NOT EXISTS <name> ON ...
        for projection in projections
        for statement in projection.index_statements()
    }


def indexes(container: Container) -> set[str]:
    """The indexes the database has."""
    if container.db.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index'"
    else:
        sql = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    with container.db.read() as tx:
        return {row[0] for row in tx.execute(sql)}


def leading_columns(db: Database, table: str) -> set[str]:
    """The first column of each index of `table`."""
    if db.dialect == "sqlite":
        sql = (
            "SELECT info.name FROM pragma_index_list(%s) AS list, "
            "pragma_index_info(list.name) AS info WHERE info.seqno = 0"
        )
    else:
        sql = (
            "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] "
            "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace"
        )
    with db.read() as tx:
        return {row[0] for row in tx.execute(sql, [table])}


def test_every_table_the_audit_reads_by_order_is_indexed_by_order(db: Database) -> None:
    """Without, every chunk of an audit scanned the whole table (dispute_view did: a year's
    store with a dispute for 1% of its orders would have been read 55,000 times over)."""
    try:
        unindexed = [t for t in TABLES if "order_id" not in leading_columns(db, t)]
    finally:
        db.close()
    assert unindexed == []


def test_indexes_built_side_by_side_are_all_there_and_a_failure_is_raised(
    container: Container,
) -> None:
    names = ["order_view_x1", "order_view_x2", "order_view_x3"]
    statements = [f"CREATE INDEX {name} ON order_view (status)" for name in names]
    bulk.index(container.db, statements, threads=2)
    assert set(names) <= indexes(container)
    with pytest.raises(Exception, match="no_such_table"):
        bulk.index(container.db, ["CREATE INDEX x4 ON no_such_table (x)"], threads=2)


@pytest.mark.postgres
@pytest.mark.parametrize("failing_first", [True, False])
def test_an_interrupted_index_step_cancels_the_statements_still_running(
    postgres_url: str, failing_first: bool
) -> None:
    """Ctrl-C or a failed statement stops the others at once, not when their CREATE INDEX
    (minutes on a large store) would have ended, whichever comes first in the list; the
    statements not started never start; the pool's connections stay usable."""
    db = open_database(Settings(database_url=postgres_url).event_store_env(), pool_size=2)
    fails, sleeps = "SELECT 1/0", "SELECT pg_sleep(60)"
    later = "CREATE TABLE never_made (x int)"
    try:
        started = time.monotonic()
        with pytest.raises(Exception, match="division by zero"):
            bulk.index(db, [fails, sleeps, later] if failing_first else [sleeps, fails, later], 2)
        assert time.monotonic() - started < 30  # the sleep was cancelled, not waited for
        for _ in range(2):  # both connections
            with db.transaction() as tx:
                assert tx.execute("SELECT to_regclass('never_made')") == [(None,)]
    finally:
        db.close()


def test_a_transaction_cancelled_from_another_thread_stops_its_statement(
    database_url: str,
) -> None:
    db = open_database(Settings(database_url=database_url).event_store_env(), pool_size=2)
    endless = (  # minutes of work on either store
        "SELECT pg_sleep(60)"
        if db.dialect == "postgres"
        else "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
        "SELECT count(*) FROM c"
    )
    errors: list[BaseException] = []
    opened = threading.Event()
    holder: list[Tx] = []

    def run() -> None:
        try:
            with db.transaction() as tx:
                holder.append(tx)
                opened.set()
                tx.execute(endless)
        except Exception as error:
            errors.append(error)

    try:
        thread = threading.Thread(target=run)
        started = time.monotonic()
        thread.start()
        assert opened.wait(10)
        while thread.is_alive() and time.monotonic() - started < 30:
            holder[0].cancel()  # again until it lands on the running statement
            thread.join(0.5)
        assert not thread.is_alive() and len(errors) == 1
        assert "cancel" in str(errors[0]).lower() or "interrupt" in str(errors[0]).lower()
        with db.transaction() as tx:
            assert tx.execute("SELECT 1") == [(1,)]
    finally:
        db.close()


def test_indexes_are_built_one_at_a_time_on_a_pool_of_one(
    container: Container, settings: Settings
) -> None:
    db = open_database(settings.event_store_env(), pool_size=1)
    try:
        bulk.index(db, [f"CREATE INDEX order_view_y{n} ON order_view (status)" for n in (1, 2)], 2)
    finally:
        db.close()
    assert {"order_view_y1", "order_view_y2"} <= indexes(container)


def audit(container: Container) -> Any:
    return Auditor(container.runner.log, container.app.config.timing).run()


def test_catch_up_builds_every_read_model_and_the_audit_agrees(
    container: Container, simulator: httpx.Client
) -> None:
    workload(container, simulator)
    processed = container.runner.catch_up()
    with container.db.read() as tx:
        assert processed == container.runner.log.count_after(tx, 0) > 0
    report = audit(container)
    assert report.ok, report.violations
    assert report.orders == 6
    balances = {(a, c): b for a, c, b in tables(container)["ledger_balances"]}
    assert sum(balances.values()) == 0
    assert balances["psp_receivable", "EUR"] == 2 * 2555 + 2555 + 2000 - 655
    assert balances["platform_revenue", "EUR"] < 0
    codes = {row[5] for row in tables(container)["failure_log"]}
    assert {"card_declined", "psp_timeout"} <= codes
    assert len(tables(container)["work_queue"]) == 1  # the unknown outcome awaits inquiry


class Killed(BaseException):
    """The process dies mid-batch (like SIGKILL, nothing may catch it as an order's fault)."""


class Exploding(Projection):
    """Applies its writes, then the process dies: the whole batch must roll back."""

    name = "ledger"
    tables: ClassVar[dict[str, str]] = {}

    def __init__(self, inner: Projection) -> None:
        super().__init__()
        self.inner = inner

    def apply(self, tx: Tx, changes: Any) -> None:
        self.inner.apply(tx, changes)
        raise Killed("killed mid-batch")


def test_a_batch_killed_midway_applies_nothing_and_a_rerun_applies_it_once(
    container: Container, simulator: httpx.Client
) -> None:
    workload(container, simulator)
    projections = all_projections(container.app.config.timing)
    broken = [Exploding(p) if p.name == "ledger" else p for p in projections]
    runner = ProjectionRunner(container.db, EventLog(container.db, container.app.mapper), broken, 7)
    with pytest.raises(Killed, match="killed mid-batch"):
        runner.run_once()
    assert tables(container)["ledger_entries"] == []
    assert container.runner.position() == 0
    container.runner.catch_up()
    report = audit(container)
    assert report.ok, report.violations


class FailingFor(Projection):
    """The orders read model, unable to apply one order (a poisoned event, say)."""

    name = "orders"
    tables: ClassVar[dict[str, str]] = {}

    def __init__(self, inner: Projection, order_id: str) -> None:
        super().__init__()
        self.inner, self.order_id = inner, order_id

    def apply(self, tx: Tx, changes: Any) -> None:
        if any(change.key == self.order_id for change in changes):
            raise ValueError("cannot apply this order")
        self.inner.apply(tx, changes)


def test_an_order_one_read_model_cannot_apply_reaches_the_others(
    container: Container, simulator: httpx.Client
) -> None:
    """The batch's read models share one savepoint while nothing fails: when one fails,
    each goes again on its own, so only that one sets the order aside."""
    workload(container, simulator)
    ok = container.app.place_checkout(
        Checkout("buyer-1", "EUR", ITEMS, "pm_card_visa", "automatic"),
        client_id="c1",
        idempotency_key="ok-3",
    ).order
    key = str(ok.id)
    projections = [
        FailingFor(p, key) if p.name == "orders" else p
        for p in all_projections(container.app.config.timing)
    ]
    log = EventLog(container.db, container.app.mapper)
    ProjectionRunner(container.db, log, projections).catch_up()
    assert [(r["projection"], r["order_id"]) for r in quarantine.rows(container.db)] == [
        ("orders", key)
    ]
    head, position = container.runner.lag()
    assert position == head  # every position moved past the batch
    report = audit(container)
    assert {(v["check"], v["order_id"]) for v in report.violations} == {("quarantined", key)}
    rows = tables(container)
    assert key not in {r[0] for r in rows["order_view"]}
    assert len(rows["order_view"]) == report.orders - 1  # every other order
    assert key in {r[0] for r in rows["ledger_entries"]}  # the other read models have it
    assert key in {r[4] for r in rows["public_events"]}


def test_two_runners_at_once_apply_each_event_once(
    container: Container, simulator: httpx.Client
) -> None:
    workload(container, simulator)
    log = EventLog(container.db, container.app.mapper)
    projections = all_projections(container.app.config.timing)
    runners = [ProjectionRunner(container.db, log, projections, batch_size=3) for _ in range(2)]
    threads = [threading.Thread(target=r.catch_up) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = audit(container)
    assert report.ok, report.violations
    assert sum(b for _, _, b in tables(container)["ledger_balances"]) == 0


def test_a_rebuild_equals_the_incrementally_built_model(
    container: Container, simulator: httpx.Client
) -> None:
    workload(container, simulator)
    container.runner.batch_size = 2  # many small batches, as in steady state
    container.runner.catch_up()
    before = tables(container)
    timing = container.app.config.timing
    for live, copy in zip(all_projections(timing), all_projections(timing, SUFFIX), strict=True):
        rebuild(container.db, container.runner.log, live, copy)
    assert tables(container) == before
    assert audit(container).ok
    container.app.place_checkout(
        Checkout("b", "EUR", ITEMS, "pm_card_visa"), client_id="c", idempotency_key="after"
    )
    container.runner.catch_up()
    assert audit(container).ok  # the swapped-in tables keep being maintained


def test_histories_read_by_range_give_every_order_once_and_whole(
    container: Container, simulator: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit and a rebuild read whole histories a range of events at a time; the limit
    cuts into an order's history, which the next read must start with (or read alone when
    it is longer than the limit), and nothing may be read twice or missed."""
    workload(container, simulator)
    container.runner.catch_up()
    db, log = container.db, container.runner.log
    with db.read() as tx:
        raw = tx.execute(f"SELECT DISTINCT originator_id FROM {db.events_table}")  # noqa: S608
        ids = [r[0] if isinstance(r[0], uuid.UUID) else uuid.UUID(r[0]) for r in raw]
        expected = log.positioned_histories(tx, ids)
        total = events_after(db, tx, 0)

    def versions(histories: dict[Any, list[tuple[int, Any]]]) -> dict[Any, list[Any]]:
        return {k: [(p, e.originator_version, type(e)) for p, e in h] for k, h in histories.items()}

    monkeypatch.setattr(projections.log, "CHUNK_EVENTS", 3)
    assert max(len(h) for h in expected.values()) > 3  # one order is read alone
    seen: dict[Any, list[tuple[int, Any]]] = {}
    last = None
    with db.read() as tx:
        while True:
            histories, last = log.histories_after(tx, last, broken={})
            if last is None:
                break
            assert histories and not set(histories) & set(seen)
            seen |= histories
    assert versions(seen) == versions(expected)
    sliced: dict[Any, list[tuple[int, Any]]] = {}
    with db.read() as tx:  # as the processes of a parallel audit or rebuild read
        for index in range(SLICES):
            low, high = slice_bounds(index)
            last = None
            while True:
                histories, last = log.histories_after(tx, last, low=low, high=high, broken={})
                if last is None:
                    break
                assert not set(histories) & set(sliced)
                assert all(
                    (low is None or k >= low) and (high is None or k < high) for k in histories
                )
                sliced |= histories
    assert versions(sliced) == versions(expected)
    report = audit(container)
    assert report.ok and report.events == total
    before = tables(container)
    timing = container.app.config.timing
    pairs = list(zip(all_projections(timing), all_projections(timing, SUFFIX), strict=True))
    assert rebuild_all(db, log, pairs) == total
    assert tables(container) == before


class HelpersOnly:
    """A build's helper processes, with this process claiming no slice: they build it all."""

    def __init__(self, pool: BuildPool) -> None:
        self.pool = pool

    def start(self, upto: int, names: Sequence[str], suffix: str) -> Callable[[], int | None]:
        self.pool.start(upto, names, suffix)
        return lambda: None

    def results(self) -> list[Part]:
        return self.pool.results()

    def stop(self) -> None:
        self.pool.stop()


@pytest.mark.parametrize("processes", [1, 3])
def test_every_read_model_rebuilt_at_once_equals_one_built_event_by_event(
    container: Container, simulator: httpx.Client, settings: Settings, processes: int
) -> None:
    workload(container, simulator)
    container.runner.catch_up()
    timing = container.app.config.timing
    pairs = list(zip(all_projections(timing), all_projections(timing, SUFFIX), strict=True))
    pool = HelpersOnly(BuildPool(settings, processes)) if processes > 1 else None
    if container.db.dialect == "sqlite":
        assert builders_for(settings, 10**9) is None  # one writer at a time: one process
        pool = None
    written_meanwhile: list[Any] = []

    def write_meanwhile(applied: int) -> None:
        """A checkout written while the copies are built: the runner's to take on."""
        if not written_meanwhile:
            checkout = Checkout("b", "EUR", ITEMS, "pm_card_visa")
            written_meanwhile.append(
                container.app.place_checkout(checkout, client_id="c", idempotency_key="late")
            )

    applied = rebuild_all(container.db, container.runner.log, pairs, write_meanwhile, pool)

    with container.db.read() as tx:
        assert applied == events_after(container.db, tx, 0)  # every event once, the late too
    slow = all_projections(timing, "__slow")
    create_tables(container.db, slow)
    ProjectionRunner(container.db, container.runner.log, slow, batch_size=2).catch_up()
    assert written_meanwhile
    assert tables(container) == tables(container, "__slow")
    assert audit(container).ok
    assert not quarantine.rows(container.db)
    assert declared_indexes(all_projections(timing)) <= indexes(container)


def test_the_audit_catches_a_corrupted_row_and_a_tampered_balance(
    container: Container, simulator: httpx.Client
) -> None:
    workload(container, simulator)
    container.runner.catch_up()
    with container.db.transaction() as tx:
        tx.execute("UPDATE order_view SET status = 'succeeded' WHERE status = 'canceled'")
        tx.execute(
            "UPDATE ledger_balances SET balance = balance + 1 WHERE account = 'platform_revenue'"
        )
    report = audit(container)
    assert not report.ok
    assert {v["check"] for v in report.violations} == {"order_rows", "ledger_balances"}


@pytest.mark.parametrize(
    ("table", "change", "check"),
    [
        ("ledger_entries", "SET amount = amount + 1", "ledger_entries"),
        ("work_queue", "SET due_at = due_at + 1", "work_queue"),
        ("failure_log", "SET code = 'tampered'", "failure_log"),
        ("attempt_view", "SET status = 'tampered'", "order_rows"),
    ],
)
def test_the_audit_names_the_order_whose_row_was_tampered_with(
    container: Container, simulator: httpx.Client, table: str, change: str, check: str
) -> None:
    workload(container, simulator)
    container.runner.catch_up()
    with container.db.transaction() as tx:
        order_id = tx.execute(f"SELECT MIN(order_id) FROM {table}")[0][0]  # noqa: S608
        assert order_id is not None
        tx.execute(f"UPDATE {table} {change} WHERE order_id = %s", [order_id])
    report = audit(container)
    assert [(v["check"], v["order_id"]) for v in report.violations] == [(check, order_id)]


def test_a_lagging_read_model_is_judged_by_its_own_position(
    container: Container, simulator: httpx.Client
) -> None:
    workload(container, simulator)
    container.runner.batch_size = 5
    container.runner.run_once()
    assert audit(container).ok


def test_changes_split_at_a_projections_position() -> None:
    change = OrderChange(order_id=None, order=None, events=((3, "a"), (5, "b")))  # type: ignore[arg-type]
    assert change.after(5) is None
    after = change.after(3)
    assert after is not None and after.events == ((5, "b"),)
