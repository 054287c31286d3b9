"""A parallel audit: processes that each audit slices of the store in one shared snapshot.

The auditing process exports its snapshot (PostgreSQL's `pg_export_snapshot`) and keeps its
transaction open; each helper imports it, so every process reads exactly the same store.
The slices are handed out by one shared counter: whoever is free takes the next, the
auditing process included, so it starts at once while the helpers are still starting.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.sharedctypes import Synchronized

from bootstrap.composition import build
from bootstrap.settings import Settings
from projections.audit import SLICES, Auditor
from projections.report import Report

MAX_PROCESSES = 8
LARGE_STORE = 20_000
"""Below this many events one process audits alone: starting another costs about a second
(importing the application), more than it saves on a store this small."""

_counter: Synchronized[int] | None = None
"""A helper's handle on the shared slice counter (set by `_adopt`)."""


def processes_for(events: int, asked: int | None = None) -> int:
    """How many processes should audit a store of `events`: `asked`, or one per core this
    process may use (at most MAX_PROCESSES) for a large store, one for a small one."""
    if asked is not None:
        return max(1, asked)
    if events < LARGE_STORE:
        return 1
    return max(1, min(MAX_PROCESSES, len(os.sched_getaffinity(0))))


def helpers_for(settings: Settings, events: int, asked: int | None = None) -> AuditPool | None:
    """The helpers an audit of `events` should have (`processes_for`), None for one process."""
    count = processes_for(events, asked)
    return AuditPool(settings, count) if count > 1 else None


class AuditPool:
    """`processes - 1` helper processes for `Auditor.run(helpers=...)`."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self.settings = settings
        self.processes = processes
        self.context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self.counter: Synchronized[int] = self.context.Value("i", 0)
        self.executor: ProcessPoolExecutor | None = None
        self.futures: list[Future[Report]] = []

    def start(
        self, snapshot: str, positions: dict[str, int], held: set[tuple[str, str]]
    ) -> Callable[[], int | None]:
        self.executor = ProcessPoolExecutor(
            self.processes - 1,
            mp_context=self.context,
            initializer=_adopt,
            initargs=(self.counter,),
        )
        self.futures = [
            self.executor.submit(_help, self.settings, snapshot, positions, held)
            for _ in range(self.processes - 1)
        ]
        return lambda: claim(self.counter)

    def results(self) -> list[Report]:
        try:
            return [future.result() for future in self.futures]
        finally:
            if self.executor is not None:
                self.executor.shutdown(cancel_futures=True)


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


def _help(
    settings: Settings, snapshot: str, positions: dict[str, int], held: set[tuple[str, str]]
) -> Report:
    """In a helper: audit free slices in the exported snapshot, return what was found."""
    counter = _counter
    if counter is None:
        raise RuntimeError("the helper was not given the slice counter")
    container = build(settings, with_psp=False)
    try:
        auditor = Auditor(container.runner.log, container.app.config.timing)
        auditor.held = held
        report = Report(positions=positions)
        with container.db.read_in(snapshot) as tx:
            auditor.audit_slices(tx, lambda: claim(counter), report)
        return report
    finally:
        container.close()
