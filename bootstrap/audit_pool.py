"""Processes that share out slices of the order-id space: a parallel audit, a parallel build.

The slices are handed out by one shared counter: whoever is free takes the next, the
process that started the work included, so it starts at once while the helpers are still
starting. For an audit, the auditing process exports its snapshot (PostgreSQL's
`pg_export_snapshot`) and keeps its transaction open; each helper imports it, so every
process reads exactly the same store. A build needs no snapshot: every process builds up
to one settled position, below which nothing changes any more (projections/bulk.py).

Helpers are forked from multiprocessing's fork server, a process started from nothing that
has imported this module (the read side) and then only forks: a helper takes its first
slice within milliseconds, where one started by spawn spent about half a second importing.
Nothing is forked from the auditing process itself, whose pool threads a fork would copy
in whatever state they were in. `warm` starts the fork server early, so that its imports
overlap the command's own start. Helpers see the environment of that moment (settings reach
them as arguments, and nothing changes the environment later).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import forkserver
from multiprocessing.connection import wait
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from typing import Any, Generic, TypeVar

from bootstrap import runtime
from bootstrap.read_side import ReadSide, open_read_side
from bootstrap.settings import Settings
from projections import bulk
from projections.audit import SLICES, Auditor
from projections.catalog import all_projections
from projections.report import Report

Result = TypeVar("Result")

MAX_PROCESSES = 8
LARGE_STORE = 20_000
"""Below this many events one process audits or builds alone: starting another costs about
a second (importing the application), more than it saves on a store this small."""

LOCK_WAIT_S = 5.0
"""How long `stop` waits for the slice counter's lock, which a helper holds for a moment as
it claims a slice (and forever if it was killed in that moment)."""

PRELOAD = [__name__]
"""What the fork server imports before it forks any helper. Each helper still runs the main
module again, as under spawn (the `payments` script is light: cli/launch.py)."""

_counter: Synchronized[int] | None = None
"""A helper's handle on the shared slice counter (set by `_adopt`)."""


def processes_for(events: int, asked: int | None = None) -> int:
    """How many processes should audit or build a store of `events`: `asked`, or one per
    core this process may use (at most MAX_PROCESSES) for a large store, one for a small one."""
    if asked is not None:
        return max(1, asked)
    if events < LARGE_STORE:
        return 1
    return max(1, min(MAX_PROCESSES, len(os.sched_getaffinity(0))))


def helpers_for(settings: Settings, events: int, asked: int | None = None) -> AuditPool | None:
    """The helpers an audit of `events` should have (`processes_for`), None for one process."""
    count = processes_for(events, asked)
    return AuditPool(settings, count) if count > 1 else None


def builders_for(settings: Settings, events: int, asked: int | None = None) -> BuildPool | None:
    """The helpers a build of `events` should have (`processes_for`), None for one process.
    SQLite is built by one: its writers queue for one lock."""
    if settings.event_store_env()["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
        return None
    count = processes_for(events, asked)
    return BuildPool(settings, count) if count > 1 else None


class SlicePool(Generic[Result]):
    """`processes - 1` helper processes, each running a task over the slices it claims."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self.settings = settings
        self.processes = processes
        self.context = _context()
        self.counter: Synchronized[int] = self.context.Value("i", 0)
        self.executor: ProcessPoolExecutor | None = None
        self.futures: list[Future[Result]] = []

    def _start(self, task: Callable[..., Result], *args: Any) -> Callable[[], int | None]:
        """Run `task(store, claim, *args)` in each helper (bootstrap.read_side: it imports what
        reading needs, not the composition root); returns this process's claim."""
        self.executor = ProcessPoolExecutor(
            self.processes - 1,
            mp_context=self.context,
            initializer=_adopt,
            initargs=(self.counter,),
        )
        try:  # each submit starts a helper: one interrupted here leaves the earlier at work
            for _ in range(self.processes - 1):
                self.futures.append(self.executor.submit(_help, self.settings, task, *args))
        except BaseException:
            self.stop()
            raise
        return lambda: claim(self.counter)

    def results(self) -> list[Result]:
        """What each helper found, once all have finished. Interrupted while waiting (SIGTERM,
        or this process's own failure), it stops them first: they would otherwise go on
        through every slice left before the wait could end."""
        try:
            return [future.result() for future in self.futures]
        except BaseException:
            self.stop()
            raise
        finally:
            if self.executor is not None:
                self.executor.shutdown(cancel_futures=True)

    def stop(self) -> None:
        """Give out no more slices, so each helper ends after the one it is on, and wait for
        them (this process's work failed or was stopped; theirs would be thrown away)."""
        lock = self.counter.get_lock()
        held = lock.acquire(timeout=LOCK_WAIT_S)  # a helper killed holding it never lets go
        try:
            self.counter.value = SLICES
        finally:
            if held:
                lock.release()
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)


class AuditPool(SlicePool[Report]):
    """Helpers for `Auditor.run(helpers=...)`."""

    def start(
        self, snapshot: str, positions: dict[str, int], held: set[tuple[str, str]]
    ) -> Callable[[], int | None]:
        return self._start(_audit, snapshot, positions, held)


class BuildPool(SlicePool[bulk.Part]):
    """Helpers for `bulk.build(helpers=...)`."""

    def start(self, upto: int, names: Sequence[str], suffix: str) -> Callable[[], int | None]:
        return self._start(_build, upto, list(names), suffix)


def warm(settings: Settings, asked: int | None = None) -> None:
    """Start the fork server now, if helpers may be wanted (PostgreSQL, not one process
    asked for) and it is not running yet; it imports the read side while the caller goes
    on. If it cannot start here, the first pool tries again (and says why)."""
    postgres = settings.event_store_env()["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    if postgres and asked != 1:
        _context()
        with contextlib.suppress(OSError):
            forkserver.ensure_running()


def _context() -> ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def claim(counter: Synchronized[int]) -> int | None:
    """The next free slice, or None when every slice is taken."""
    with counter.get_lock():
        index = counter.value
        if index >= SLICES:
            return None
        counter.value = index + 1
    return index


def _adopt(counter: Synchronized[int]) -> None:
    global _counter  # noqa: PLW0603 - a pool initializer can only hand over through a global
    _counter = counter
    _exit_with(multiprocessing.parent_process())


STARTER_GONE = 3
"""A helper's exit status when the process that started it is gone."""


def _exit_with(starter: BaseProcess | None) -> None:
    """End this helper the moment `starter` (the auditing or rebuilding process) ends. When
    that one was killed outright (SIGKILL), nothing will use this helper's work, and a
    helper left to itself went on through every slice left (into copies a second rebuild
    would reset and build again), then waited for more work forever, holding the fork
    server alive with it. A slice cut short is a transaction PostgreSQL rolls back."""
    if starter is None:
        return

    def watch() -> None:
        wait([starter.sentinel])
        os._exit(STARTER_GONE)

    threading.Thread(target=watch, name="starter-watch", daemon=True).start()


def _help(settings: Settings, task: Callable[..., Result], *args: Any) -> Result:
    """In a helper: run `task` over the free slices, return what it found."""
    counter = _counter
    if counter is None:
        raise RuntimeError("the helper was not given the slice counter")
    store = open_read_side(settings)
    try:
        with runtime.batch_heap():
            return task(store, lambda: claim(counter), *args)
    finally:
        store.close()


def _audit(
    store: ReadSide,
    claimed: Callable[[], int | None],
    snapshot: str,
    positions: dict[str, int],
    held: set[tuple[str, str]],
) -> Report:
    """Audit free slices in the exported snapshot."""
    auditor = Auditor(store.log, store.timing)
    auditor.held = held
    report = Report(positions=positions)
    with store.db.read_in(snapshot) as tx:
        auditor.audit_slices(tx, claimed, report)
    return report


def _build(
    store: ReadSide,
    claimed: Callable[[], int | None],
    upto: int,
    names: list[str],
    suffix: str,
) -> bulk.Part:
    """Build free slices of the copies named `names` up to `upto`."""
    copies = [p for p in all_projections(store.timing, suffix) if p.name in names]
    part = bulk.Part()
    bulk.build_slices(store.db, store.log, copies, upto, claimed, part)
    return part
