"""The recovery worker: drives every order that owes it something to a recorded outcome.

It asks the work-queue read model *which* orders are due, then decides *what* to do from
the authoritative aggregate (the read model may lag). Several workers, and API processes,
may act on one order at once: each step is a write-ahead event saved with optimistic
concurrency, PSP calls reuse the call's idempotency key, and a step another process already
took is refused by the aggregate's guards and skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from uuid import UUID

from eventsourcing.persistence import PersistenceError

from adapters.db import Database
from app.application import PaymentsApp
from app.recovery_commands import RecoveryCommands
from domain.errors import DomainError
from domain.worklist import Task, Work, due
from projections import work_queue
from workers.loop import run_until_stopped

BROKEN_REST_S = 60.0
"""How long an order that failed unexpectedly rests before the worker tries it again."""
log = logging.getLogger("payments.worker")
BATCH = 50


class RecoveryWorker:
    """Polls the work queue every `interval_s` and works each due order."""

    def __init__(
        self,
        app: PaymentsApp,
        db: Database,
        interval_s: float,
        batch: int = BATCH,
        on_task: Callable[[str], None] = lambda task: None,
    ) -> None:
        self.app = app
        self.commands = RecoveryCommands(app)
        self.db = db
        self.interval_s = interval_s
        self.batch = batch
        self.on_task = on_task
        self.resting: dict[UUID, float] = {}
        """Orders the queue says are due but the aggregate says are not (the queue lags)."""

    def run_forever(self, stop: threading.Event) -> None:
        """Work until `stop`; no error ends the loop (it is logged and the pass retried)."""
        run_until_stopped(stop, self.run_once, self.interval_s, log)

    def run_once(self) -> int:
        """Work every due order once; returns how many orders it touched."""
        now = time.time()
        self.resting = {o: until for o, until in self.resting.items() if until > now}
        order_ids = [o for o in self._due_orders(now) if o not in self.resting]
        for order_id in order_ids:
            try:
                self.work_on(order_id)
            except (DomainError, PersistenceError) as error:  # the next pass retries it
                log.warning("order %s: %s", order_id, error, extra={"order_id": str(order_id)})
                self.resting[order_id] = time.time() + self.interval_s
            except Exception as error:  # one broken order must not starve the others
                context = {"order_id": str(order_id)}
                log.error("order %s failed: %s", order_id, error, exc_info=error, extra=context)
                self.resting[order_id] = time.time() + max(self.interval_s, BROKEN_REST_S)
        return len(order_ids)

    def work_on(self, order_id: UUID) -> None:
        """Do what the order's state says is due now; a step someone else took is skipped."""
        order = self.app.get_order(order_id)
        work = due(order, self.app.clock(), self.app.config.timing)
        if not work:
            self.resting[order_id] = time.time() + self.interval_s
            return
        self.resting.pop(order_id, None)
        for item in work:
            try:
                self._do(order_id, item)
            except DomainError as refused:
                context = _context(order_id, item)
                log.info("skipped %s for order %s: %s", item.task, order_id, refused, extra=context)

    def _do(self, order_id: UUID, work: Work) -> None:
        log.info("%s for order %s", work.task, order_id, extra=_context(order_id, work))
        self.on_task(work.task.value)
        steps: dict[Task, Callable[[], object]] = {
            Task.INQUIRE: lambda: self.commands.inquire(order_id, work.kind, work.number),
            Task.RESEND: lambda: self.commands.resend(order_id, work.kind, work.number),
            Task.EXPIRE: lambda: self.commands.expire(order_id),
            Task.VOID: lambda: self.commands.void_unused(order_id, work.number),
            Task.REFUND: lambda: self.commands.refund_unused(order_id),
            Task.CAPTURE: lambda: self.commands.finish_capture(order_id),
            Task.LAPSE: lambda: self.commands.lapse(order_id),
        }
        steps[work.task]()

    def _due_orders(self, now: float) -> list[UUID]:
        with self.db.read() as tx:
            return [UUID(o) for o in work_queue.due_orders(tx, now, self.batch)]


def _context(order_id: UUID, work: Work) -> dict[str, str]:
    call = f"{work.kind.value}:{work.number}"
    return {"order_id": str(order_id), "task": work.task.value, "call": call}
