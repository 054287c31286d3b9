"""Building read models from zero, order by order, by several processes at once.

A rebuild's copies start empty, so nothing needs the log's order: every order is built once
from its whole history up to one settled position (`upto`, below which every event has
committed or never will), in slices of the order-id space that each process takes as it
comes free (bootstrap/audit_pool.py), each chunk of orders one short transaction. The
ledger's balances, the only figures shared across orders, are added up per process and
written once at the end; then every copy stands at `upto`, and the runner carries on from
there. Each order is decoded and replayed once for all the read models, not once a batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from adapters.db import Database, Tx
from adapters.event_store import settled_below_sql
from projections import positions, quarantine
from projections.audit import SLICES, slice_bounds
from projections.base import Projection
from projections.ledger import LedgerProjection
from projections.log import EventLog, position_column
from projections.runner import apply_guarded

log = logging.getLogger("payments.projections")
INDEXING_THREADS = 2
"""Indexes built at once at the end of a build (more would queue for the database pool's
connections, and the largest index takes about as long as the rest together)."""
STOP_WAIT_S = 10.0
"""How long an interrupted index step keeps cancelling the statements still running."""


@dataclass
class Part:
    """What one process built: the events it applied and the balances it added up."""

    events: int = 0
    balances: dict[tuple[str, str], int] = field(default_factory=dict)

    def merge(self, other: Part) -> None:
        self.events += other.events
        for account, amount in other.balances.items():
            self.balances[account] = self.balances.get(account, 0) + amount


class Builders(Protocol):
    """Other processes that build slices beside this one (bootstrap/audit_pool.py)."""

    def start(self, upto: int, names: Sequence[str], suffix: str) -> Callable[[], int | None]:
        """Start building slices of the copies named `names` (with `suffix`) up to `upto`;
        returns how this process claims the next free slice (None when none is left)."""

    def results(self) -> list[Part]:
        """Wait for the other processes and return what each built."""

    def stop(self) -> None:
        """Have the other processes stop after their current slice, and wait for them."""


def build(
    db: Database,
    event_log: EventLog,
    copies: Sequence[Projection],
    helpers: Builders | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Fill empty `copies` (at position 0, their tables made without their secondary
    indexes: rebuild.reset_copy) with every event up to the newest settled one, then index
    them; returns (events applied, the position the copies now stand at)."""
    with db.read() as tx:
        upto = settled_head(db, tx)
    part = Part()
    if upto:
        if helpers is None:
            claim = counter(SLICES)
        else:
            suffix = copies[0].suffix
            claim = helpers.start(upto, [c.name for c in copies], suffix)
        try:
            build_slices(db, event_log, copies, upto, claim, part, progress)
        except BaseException:
            if helpers:
                helpers.stop()
            raise
        for other in helpers.results() if helpers else []:
            part.merge(other)
            if progress:
                progress(other.events)
    index(db, [s for copy in copies for s in copy.index_statements()], INDEXING_THREADS)
    with db.transaction() as tx:
        for copy in copies:
            if isinstance(copy, LedgerProjection):
                copy.add_balances(tx, part.balances)
            positions.advance(tx, copy.position_name, upto)
    return part.events, upto


def index(db: Database, statements: Sequence[str], threads: int) -> None:
    """Create the copies' secondary indexes, each in its own transaction, `threads` at once
    on PostgreSQL (each on its own connection, so the server builds them side by side; one
    at a time, the other cores idled through the end of every build). A build that fails
    after this leaves indexed copies, which the next rebuild drops like any other."""
    threads = min(threads, db.connections)  # more would wait for a connection (10 s at most)
    if threads < 2:  # SQLite too: one connection per thread, one writer at a time
        for statement in statements:  # on Ctrl-C, psycopg cancels the statement running
            with db.transaction() as tx:
                tx.execute(statement)
        return
    running: set[Tx] = set()
    guard = threading.Lock()
    stopping = threading.Event()

    def create(statement: str) -> None:
        with db.transaction() as tx:
            with guard:
                if stopping.is_set():
                    return
                running.add(tx)
            try:
                tx.execute(statement)
            except BaseException:
                stopping.set()  # now, not when the main thread wakes: this thread is free
                raise  # to take the next statement at once
            finally:
                with guard:
                    running.discard(tx)

    with ThreadPoolExecutor(threads, thread_name_prefix="index") as pool:
        futures = [pool.submit(create, statement) for statement in statements]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:  # the first failure in the statements' order
                if future in done and (error := future.exception()) is not None:
                    raise error
        except BaseException:
            # Ctrl-C, or one failed: the others stop now rather than when their (perhaps
            # long) CREATE INDEX ends, which the pool's shutdown would wait for.
            stopping.set()
            for future in futures:
                future.cancel()  # those not started
            _cancel(running, guard)
            raise


def _cancel(running: set[Tx], guard: threading.Lock) -> None:
    """Cancel the statements still running, again every half second until they have
    ended (a cancel that reaches the server before its statement is lost), for at most
    STOP_WAIT_S; a cancel that fails is logged, not raised over the error being handled."""
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        with guard:
            if not running:
                return
            for tx in running:
                try:
                    tx.cancel()
                except Exception as error:  # the error being handled matters more
                    log.warning("could not cancel an index build: %s", error)
        time.sleep(0.5)


def build_slices(
    db: Database,
    event_log: EventLog,
    copies: Sequence[Projection],
    upto: int,
    claim: Callable[[], int | None],
    part: Part,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Build the slices `claim` hands out until none is left (every process of a build runs
    this), adding the events applied and the balances to `part`."""
    for copy in copies:
        copy.fresh = True
        if isinstance(copy, LedgerProjection):
            copy.totals = part.balances
    try:
        while (index := claim()) is not None:
            low, high = slice_bounds(index)
            last: UUID | None = None
            while True:
                with db.transaction() as tx:
                    broken: dict[UUID, str] = {}
                    histories, last = event_log.histories_after(
                        tx, last, low=low, high=high, broken=broken
                    )
                    applied = _build_chunk(tx, copies, histories, broken, upto)
                if last is None:
                    break
                part.events += applied
                if progress:
                    progress(applied)
    finally:
        for copy in copies:
            copy.fresh = False
            if isinstance(copy, LedgerProjection):
                copy.totals = None


def _build_chunk(
    tx: Tx,
    copies: Sequence[Projection],
    histories: dict[UUID, list[tuple[int, Any]]],
    broken: dict[UUID, str],
    upto: int,
) -> int:
    changes = EventLog.whole_changes(histories, upto, broken)
    for copy in copies:
        for order_id, error in broken.items():
            quarantine.add(tx, copy.position_name, str(order_id), upto, error)
        if changes:
            apply_guarded(tx, copy, changes)
    return sum(len(change.events) for change in changes)


def settled_head(db: Database, tx: Tx) -> int:
    """The position of the newest event below which every event has committed or never
    will (0 for an empty log)."""
    column = position_column(db)
    settled = (
        "" if db.dialect == "sqlite" else f" WHERE {column} < {settled_below_sql(db.events_table)}"
    )
    return int(tx.execute(f"SELECT MAX({column}) FROM {db.events_table}{settled}")[0][0] or 0)  # noqa: S608


def counter(count: int) -> Callable[[], int | None]:
    """Claims 0, 1, … count - 1, then None: the slices for one process alone."""
    taken = iter(range(count))
    return lambda: next(taken, None)
