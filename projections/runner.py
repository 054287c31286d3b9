"""The projection runner: follows the log in batches, exactly once.

Each batch is one transaction holding every projection's changes and their new positions,
so a crash mid-batch applies nothing and the next run starts where the last commit left
off. Positions advance only from the value read under lock, so two runners never apply a
batch twice (the second waits, then finds nothing to do).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from uuid import UUID

from adapters.db import STORE_ERRORS, TRANSIENT_ERRORS, Database, Tx
from projections import positions, quarantine
from projections.base import OrderChange, Projection
from projections.log import EventLog, LogRow

log = logging.getLogger("payments.projections")
BATCH_SIZE = 500
HELD_WAIT_S = 0.01
"""How long to wait before looking again at events a running transaction holds back."""
GATHER_S = 0.05
"""After a short batch, how long to let new events gather before the next one. Under load
this turns many one-event batches (each a transaction, a history query and a write per
table) into a few larger ones, for at most this much more lag."""


@dataclass(frozen=True)
class Batch:
    """What one batch covers: the settled log rows after `start`, and the orders they touch
    rebuilt as of the last row (those that do not decode or replay are in `broken`)."""

    start: int
    rows: list[LogRow]
    held_back: bool
    changes: list[OrderChange]
    broken: dict[UUID, str]

    @property
    def end(self) -> int:
        return self.rows[-1][0]


def _taken(ahead: Future[Batch] | None, start: int) -> Batch | None:
    """The batch read ahead, if it starts at `start` and holds events (else read afresh:
    another runner moved the positions, the log was caught up then, or the read failed)."""
    if ahead is None:
        return None
    try:
        batch = ahead.result()
    except Exception as error:  # read again inside the batch's transaction, which reports it
        log.debug("reading ahead failed: %s", type(error).__name__)
        return None
    return batch if batch.start == start and batch.rows else None


class ProjectionRunner:
    """Runs a set of projections over one event log."""

    def __init__(
        self,
        db: Database,
        event_log: EventLog,
        projections: Sequence[Projection],
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.db = db
        self.log = event_log
        self.projections = list(projections)
        self.batch_size = batch_size
        self.wakeup = threading.Event()
        self.last_progress = time.monotonic()
        """When a batch last committed or found the log caught up (the health check's clue)."""
        self.held_back = False
        """Whether the last batch stopped at events a running transaction holds back."""
        self.committed: list[Callable[[], object]] = []
        """Called after a batch that covered events commits (the outbound worker's wake-up:
        new deliveries may be due)."""

    def run_once(self) -> int:
        """Process one batch; returns how many events it covered (0 when caught up)."""
        return self._run_once()[0]

    def _run_once(
        self, ahead: Future[Batch] | None = None, reader: Executor | None = None
    ) -> tuple[int, Future[Batch] | None]:
        with self.db.transaction() as tx:
            done = self._run_batch(tx, ahead, reader)
        self.last_progress = time.monotonic()
        if done[0]:
            for listener in self.committed:
                listener()
        return done

    def run_batch(self, tx: Tx) -> int:
        """Process one batch inside the caller's transaction."""
        return self._run_batch(tx)[0]

    def _run_batch(
        self, tx: Tx, ahead: Future[Batch] | None = None, reader: Executor | None = None
    ) -> tuple[int, Future[Batch] | None]:
        """Process one batch, taking it from `ahead` (read while the last one was written)
        when that starts where the locked positions do; with `reader`, start reading the
        next full batch while this one is written. Returns the events covered, and that."""
        done_at = self._positions(tx)
        start = min(done_at.values())
        batch = _taken(ahead, start) or self.read(tx, start)
        self.held_back = batch.held_back
        if not batch.rows:
            return 0, None
        following = None
        if reader is not None and len(batch.rows) >= self.batch_size:
            following = reader.submit(self._read_ahead, batch.end)
        self._apply_all(tx, batch, done_at)
        return len(batch.rows), following

    def read(self, tx: Tx, start: int) -> Batch:
        """The next batch after `start`: its settled log rows and the orders they touch."""
        rows, held_back = self.log.read_settled(tx, start, self.batch_size)
        broken: dict[UUID, str] = {}
        changes = self.log.changes(tx, rows, broken) if rows else []
        return Batch(start, rows, held_back, changes, broken)

    def _read_ahead(self, start: int) -> Batch:
        with self.db.read() as tx:
            return self.read(tx, start)

    def _apply_all(self, tx: Tx, batch: Batch, done_at: dict[str, int]) -> None:
        """Each projection's part of the batch, then their positions, in one statement (a
        batch of a live runner is small: statements per batch were most of its cost)."""
        held = quarantine.held(tx)
        end = batch.end
        work = []
        for projection in self.projections:
            name, done = projection.position_name, done_at[projection.position_name]
            for order_id, error in batch.broken.items():
                quarantine.add(tx, name, str(order_id), end, error)
            new = [c for c in (change.after(done) for change in batch.changes) if c]
            new = [c for c in new if (name, c.key) not in held]
            if new:
                work.append((projection, new))
        apply_all_guarded(tx, work)
        moved = [name for name, done in done_at.items() if end > done]
        if moved:
            positions.advance_all(self.db, tx, moved, end)

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Run batches until nothing is left; returns the events processed. Events a
        running transaction holds back are waited for: they are committed already. On
        PostgreSQL the next batch is read and replayed on a second connection while this
        one is written, so the database's time and ours overlap."""
        total = 0
        ahead: Future[Batch] | None = None
        # SQLite reads ahead for nothing: one file, one writer, no second core to use.
        reads_ahead = self.db.dialect == "postgres"
        with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
            while True:
                processed, ahead = self._run_once(ahead, pool if reads_ahead else None)
                if processed:
                    total += processed
                    if progress:
                        progress(processed)
                elif self.held_back:
                    time.sleep(HELD_WAIT_S)
                else:
                    return total

    def run_forever(
        self, stop: threading.Event, idle_s: float = 0.5, gather_s: float = GATHER_S
    ) -> None:
        """Catch up, then wait for a wake-up (or `idle_s`) and repeat, until `stop` is set.
        A full batch is followed at once by the next; a short one after `gather_s`."""
        while not stop.is_set():
            try:
                processed = self.run_once()
                if processed >= self.batch_size:
                    continue
                if processed or self.held_back:  # held back: a commit is due any moment
                    stop.wait(gather_s)
                    continue
            except STORE_ERRORS as error:
                log.warning("projection batch failed, will retry: %s", type(error).__name__)
                stop.wait(1.0)
            except Exception as error:  # a broken batch must not kill the process silently
                log.exception("projection batch failed", exc_info=error)
                stop.wait(1.0)
            self.wakeup.wait(idle_s)
            self.wakeup.clear()

    def position(self) -> int:
        """The lowest position among this runner's projections."""
        with self.db.read() as tx:
            return min(self._positions(tx, lock=False).values())

    def lag(self) -> tuple[int, int]:
        """(log head, lowest projection position)."""
        with self.db.read() as tx:
            return self.log.head(tx), min(self._positions(tx, lock=False).values())

    def behind(self) -> int:
        """How many events the slowest projection has yet to apply."""
        with self.db.read() as tx:
            return self.log.count_after(tx, min(self._positions(tx, lock=False).values()))

    def _positions(self, tx: Tx, *, lock: bool = True) -> dict[str, int]:
        """Each projection's position (locked for this batch on PostgreSQL)."""
        names = [p.position_name for p in self.projections]
        found = positions.read(self.db, tx, names, lock=lock)
        if len(found) != len(names):
            missing = sorted(set(names) - set(found))
            raise RuntimeError(f"no position for {missing}: run `payments migrate` first")
        return found


def apply_all_guarded(tx: Tx, work: Sequence[tuple[Projection, list[OrderChange]]]) -> None:
    """Apply each (projection, changes) pair as `apply_guarded` would, under one savepoint
    while nothing fails (one, not one per read model); if anything fails, each projection
    again under its own (and its orders under theirs, as `apply_guarded` does)."""
    if work and not _applied(tx, work):
        for projection, changes in work:
            apply_guarded(tx, projection, changes)


def _applied(tx: Tx, work: Sequence[tuple[Projection, list[OrderChange]]]) -> bool:
    """Apply every pair under one savepoint: False (and nothing applied) if one failed for
    its data; a failing connection is not the data's fault, and is raised."""
    try:
        with tx.savepoint():
            for projection, changes in work:
                projection.apply(tx, changes)
    except TRANSIENT_ERRORS:
        raise
    except Exception:
        return False
    return True


def apply_guarded(tx: Tx, projection: Projection, changes: list[OrderChange]) -> None:
    """Apply a batch to one read model; if it fails, apply it order by order and
    quarantine the orders that fail, so one bad order never stops the others. A
    failing connection is not an order's fault: it aborts the batch, retried later."""
    if _applied(tx, [(projection, changes)]):
        return
    for change in changes:
        try:
            with tx.savepoint():
                projection.apply(tx, [change])
        except TRANSIENT_ERRORS:
            raise
        except Exception as error:
            order_id = change.key
            log.error(
                "projection %s cannot apply order %s; quarantined",
                projection.position_name,
                order_id,
                exc_info=error,
                extra={"order_id": order_id},
            )
            error_text = quarantine.describe(error)
            quarantine.add(tx, projection.position_name, order_id, change.last_position, error_text)


def wait_for(runner: ProjectionRunner, position: int, timeout_s: float) -> bool:
    """Block until the runner's projections reach `position` (True) or the timeout (False)."""
    deadline = time.monotonic() + timeout_s
    while runner.position() < position:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True
