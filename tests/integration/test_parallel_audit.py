"""A parallel audit (bootstrap/audit_pool.py) reads exactly the auditing process's snapshot,
covers every order exactly once across its slices, and finds what one process finds."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path

import pytest

from bootstrap import audit_pool
from bootstrap.audit_pool import AuditPool, BuildPool, SlicePool, processes_for
from bootstrap.composition import Container
from bootstrap.read_side import ReadSide
from bootstrap.settings import Settings
from domain.cart import Checkout, LineItem
from projections import bulk
from projections.audit import SLICES, Auditor, slice_bounds
from projections.bulk import Part
from projections.catalog import all_projections
from projections.log import events_after
from projections.rebuild import SUFFIX, reset_copy
from projections.report import Report

TOKENS = ["pm_card_visa", "pm_card_declined", "pm_card_visa", "pm_card_insufficient_funds"]


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: SQLite cannot share a snapshot, so it is always audited by one."""
    return postgres_url


def place(container: Container, count: int) -> list[uuid.UUID]:
    items = (LineItem("s1", "a", 1, 2000), LineItem("s2", "b", 2, 555))
    ids = []
    for n in range(count):
        checkout = Checkout("buyer", "EUR", items, TOKENS[n % len(TOKENS)], "automatic")
        written = container.app.place_checkout(
            checkout, client_id="c", idempotency_key=str(uuid.uuid4())
        )
        ids.append(written.order.id)
    return ids


def helpers_only(
    container: Container, settings: Settings, processes: int, after_export: Callable[[], object]
) -> tuple[Report, int]:
    """Export a snapshot, let `after_export` write more, then have helper processes audit
    every slice (this process claims none); returns what they found and the events the
    snapshot held."""
    pool = AuditPool(settings, processes)
    auditor = Auditor(container.runner.log, container.app.config.timing)
    with container.db.read() as tx:
        snapshot = container.db.export_snapshot(tx)
        assert snapshot is not None
        seen = events_after(container.db, tx, 0)
        positions = auditor._positions(tx)  # what run() hands the helpers
        after_export()
        pool.start(snapshot, positions, set())
        merged = Report(positions=positions)
        for part in pool.results():
            merged.merge(part)
    return merged, seen


def test_slices_cover_the_id_space_once() -> None:
    bounds = [slice_bounds(i) for i in range(SLICES)]
    assert bounds[0][0] is None and bounds[-1][1] is None
    for (_, high), (low, _) in pairwise(bounds):
        assert high == low is not None


def test_helpers_read_the_exported_snapshot_and_every_order_once(
    container: Container, settings: Settings
) -> None:
    orders = place(container, 24)
    container.runner.catch_up()
    with container.db.transaction() as tx:  # every order's row now differs from its replay
        tx.execute("UPDATE order_view SET amount = amount + 1")

    report, seen = helpers_only(container, settings, 3, lambda: place(container, 5))

    assert report.events == seen  # not the 5 orders written after the export
    assert report.orders == len(orders)
    violated = [v["order_id"] for v in report.violations if v["check"] == "order_rows"]
    assert sorted(violated) == sorted(str(o) for o in orders)  # each once: slices are disjoint


def test_a_parallel_audit_finds_what_one_process_finds(
    container: Container, settings: Settings
) -> None:
    place(container, 30)
    container.runner.catch_up()
    auditor = Auditor(container.runner.log, container.app.config.timing)
    alone = auditor.run()
    together = auditor.run(helpers=AuditPool(settings, 2))
    assert alone.ok and together.ok, together.violations
    for field in ("events", "orders", "expected_rows", "checked", "ledger", "projected_ledger"):
        assert getattr(together, field) == getattr(alone, field), field

    with container.db.transaction() as tx:
        tx.execute("UPDATE ledger_balances SET balance = balance + 1")
        tx.execute("DELETE FROM work_queue")
        tx.execute("UPDATE ledger_entries SET amount = amount * 2")
    broken = auditor.run(helpers=AuditPool(settings, 2))
    assert (
        {v["check"] for v in broken.violations}
        == {v["check"] for v in auditor.run().violations}
        >= {"ledger_balances", "ledger_entries", "work_queue"}
    )


def test_small_stores_are_audited_by_one_process() -> None:
    assert processes_for(100) == 1
    assert processes_for(100, asked=3) == 3
    assert processes_for(10**6) >= 1


class FailingHere:
    """A build whose own process fails at its first slice, its helpers just started."""

    def __init__(self, pool: BuildPool) -> None:
        self.pool = pool

    def start(self, upto: int, names: Sequence[str], suffix: str) -> Callable[[], int | None]:
        self.pool.start(upto, names, suffix)

        def claim() -> int | None:
            raise RuntimeError("this process failed")

        return claim

    def results(self) -> list[Part]:
        return self.pool.results()

    def stop(self) -> None:
        self.pool.stop()


def test_a_build_that_fails_here_stops_its_helpers(
    container: Container, settings: Settings
) -> None:
    place(container, 12)
    copies = all_projections(container.app.config.timing, SUFFIX)
    for copy in copies:
        reset_copy(container.db, copy)
    pool = BuildPool(settings, 2)
    with pytest.raises(RuntimeError, match="this process failed"):
        bulk.build(container.db, container.runner.log, copies, FailingHere(pool))
    assert [part.events for part in pool.results()] == [0]  # stopped before its first slice
    assert container.db.one("SELECT COUNT(*) FROM order_view__rebuild")[0][0] == 0


def _whence(store: ReadSide, claimed: Callable[[], int | None]) -> tuple[int, bool]:
    """A helper's task: its parent process, and whether the web stack was ever imported in
    it (module level, so a helper can import it by name)."""
    return os.getppid(), "fastapi" in sys.modules


def test_helpers_are_forked_from_the_fork_server_which_imported_only_the_read_side(
    container: Container, settings: Settings
) -> None:
    audit_pool.warm(settings)
    pool: SlicePool[tuple[int, bool]] = SlicePool(settings, 3)
    pool._start(_whence)
    (server, web), (other, _) = pool.results()
    assert server == other != os.getpid()
    command = Path(f"/proc/{server}/cmdline").read_bytes()
    assert b"from multiprocessing.forkserver import main" in command
    assert web is False
