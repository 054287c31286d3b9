"""The outbound webhook worker: delivers public events to the marketplace's endpoints.

At least once and in order per order (a later event of an order waits for the earlier one at
the same endpoint); retried with exponential backoff and full jitter until
PAYMENTS_OUTBOUND_GIVE_UP_AFTER_S after the first try, then the endpoint is disabled. Each
delivery is leased before it is sent, so several workers never send one event to one
endpoint at once, and a worker killed mid-delivery leaves a lease that simply runs out.
Deliveries go out on a small thread pool, at most PER_ENDPOINT at once per endpoint and
PER_FAILING_ENDPOINT once its deliveries fail, so a slow or dead endpoint holds only a small
share and never the checkout path (another thread). The pool is kept busy: a thread that
finishes a delivery wakes the worker to claim the next due ones at once, so nobody waits for
a slow endpoint's deliveries to end before their own next event goes out.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from adapters import webhook_store
from adapters.db import TRANSIENT_ERRORS, Database
from adapters.outbound import Sender
from projections import public_events
from workers.loop import run_until_stopped

log = logging.getLogger("payments.outbound")
BATCH = 128
THREADS = 32
"""Deliveries at once, all endpoints together: twice PER_ENDPOINT, so one endpoint that
hangs before any try has failed still leaves half the threads to the others."""
PER_ENDPOINT = 16
"""Deliveries at once to one endpoint that is answering well..."""
PER_FAILING_ENDPOINT = 2
"""...and to one whose latest try here failed, or whose due delivery has failed before: a
slow or dead endpoint holds at most this many threads, so the others keep flowing."""


@dataclass(frozen=True)
class OutboundPolicy:
    """PAYMENTS_OUTBOUND_*: when to retry, when to give up, how long a lease lasts."""

    base_s: float = 1.0
    max_s: float = 3600.0
    give_up_after_s: float = 3 * 24 * 3600.0
    timeout_s: float = 10.0

    @property
    def lease_s(self) -> float:
        return self.timeout_s * 3 + 5

    def next_try(self, tries: int, now: float, rand: float) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**tries)] from now."""
        return now + rand * min(self.max_s, self.base_s * 2.0**tries)


class OutboundWorker:
    """Finds due deliveries, claims and sends them, records every try."""

    def __init__(
        self,
        db: Database,
        sender: Sender,
        policy: OutboundPolicy,
        interval_s: float = 0.5,
        rand: random.Random | None = None,
        batch: int = BATCH,
    ) -> None:
        self.db = db
        self.batch = batch
        self.sender = sender
        self.policy = policy
        self.interval_s = interval_s
        self.rand = rand or random.Random()  # noqa: S311 - jitter, not security
        self.pool = ThreadPoolExecutor(THREADS, thread_name_prefix="outbound")
        self.wakeup = threading.Event()
        """Set when a delivery ends or new ones may be due: the next pass starts at once."""
        self._lock = threading.Lock()
        self._sending: dict[str, int] = defaultdict(int)
        """Deliveries on their way, per endpoint (guarded by `_lock`)."""
        self._failing: set[str] = set()
        """Endpoints whose latest try here failed: they get PER_FAILING_ENDPOINT threads
        until one succeeds, even for deliveries not tried yet."""
        self._ended: list[tuple[webhook_store.Due, webhook_store.Tried | None]] = []
        """Deliveries that ended and wait to be recorded (guarded by `_lock`)."""
        self._recording = threading.Lock()

    def run_forever(self, stop: threading.Event) -> None:
        """Deliver until `stop`; a failing pass is logged and retried."""
        run_until_stopped(stop, self.dispatch, self.interval_s, log, self.wakeup)

    def run_once(self) -> int:
        """Send every delivery due now that the caps allow and wait for them; how many."""
        started = self._start()
        wait(started)
        return len(started)

    def dispatch(self) -> int:
        """Claim the due deliveries the free threads and the caps allow and start them,
        without waiting for them to end; how many started."""
        return len(self._start())

    def _start(self) -> list[Future[None]]:
        with self._lock:
            free = THREADS - sum(self._sending.values())
            sending = dict(self._sending)
            failing = set(self._failing)
        if free <= 0:
            return []
        full = [e for e, n in sending.items() if n >= self._cap(e, failing, 0)]
        retries_full = [e for e, n in sending.items() if n >= PER_FAILING_ENDPOINT]
        now = time.time()
        chosen: list[webhook_store.Due] = []
        for due in webhook_store.due(self.db, now, self.batch, full, retries_full):
            cap = self._cap(due.endpoint_id, failing, due.tries)
            if len(chosen) < free and sending.get(due.endpoint_id, 0) < cap:
                sending[due.endpoint_id] = sending.get(due.endpoint_id, 0) + 1
                chosen.append(due)
        lease_s = self.policy.lease_s
        claimed = webhook_store.claim_many(self.db, [d.id for d in chosen], now, lease_s)
        chosen = [d for d in chosen if d.id in claimed]
        if not chosen:
            return []
        bodies = public_events.bodies(self.db, [d.event_id for d in chosen])
        with self._lock:
            for due in chosen:
                self._sending[due.endpoint_id] += 1
        return [self.pool.submit(self._deliver_safely, d, bodies.get(d.event_id)) for d in chosen]

    @staticmethod
    def _cap(endpoint_id: str, failing: set[str], tries: int) -> int:
        return PER_FAILING_ENDPOINT if tries or endpoint_id in failing else PER_ENDPOINT

    def _deliver_safely(self, due: webhook_store.Due, body: str | None) -> None:
        """One delivery on its own: whatever goes wrong with it stays with it (its lease
        runs out and it is tried again), never stopping the others."""
        tried = None
        try:
            tried = self._deliver(due, body)
        except Exception as error:
            log.error(
                "delivery %s failed", due.id, exc_info=error, extra={"endpoint": due.endpoint_id}
            )
        self._finish(due, tried)

    def _deliver(self, due: webhook_store.Due, body: str | None) -> webhook_store.Tried | None:
        if body is None:  # the event is gone (a rebuild in progress): try again later
            return None
        attempt = self.sender.send(due.url, due.secret, due.event_id, body.encode())
        at = time.time()
        first = due.first_try_at or at
        give_up = not attempt.delivered and at - first >= self.policy.give_up_after_s
        next_at = (
            None if attempt.delivered else self.policy.next_try(due.tries, at, self.rand.random())
        )
        if not attempt.delivered:
            log.info(
                "webhook %s to %s failed: %s",
                due.event_id,
                due.endpoint_id,
                attempt.error or attempt.status_code,
                extra={"endpoint": due.endpoint_id},
            )
        return webhook_store.Tried(due, at, attempt, next_at, give_up)

    def _finish(self, due: webhook_store.Due, tried: webhook_store.Tried | None) -> None:
        """Record the try with the others that ended meanwhile, in one transaction (group
        commit: whoever holds `_recording` writes what has queued up), then free its thread
        share and wake the worker: the order's next event may be due now."""
        with self._lock:
            self._ended.append((due, tried))
        with self._recording:
            with self._lock:
                ended, self._ended = self._ended, []
            if not ended:
                return  # another thread recorded it
            tries = [t for _, t in ended if t is not None]
            self._record(tries)
            with self._lock:
                for done, _ in ended:
                    self._sending[done.endpoint_id] -= 1
                    if not self._sending[done.endpoint_id]:
                        del self._sending[done.endpoint_id]
                for t in tries:
                    if t.attempt.delivered:
                        self._failing.discard(t.due.endpoint_id)
                    else:
                        self._failing.add(t.due.endpoint_id)
        self.wakeup.set()

    def _record(self, tries: list[webhook_store.Tried]) -> None:
        """Record the tries together; if a row makes that fail, each on its own, so one that
        cannot be recorded loses only itself (its lease runs out and it is sent again). A
        store that is down or locked loses the group at once, as before: retrying each try
        against it would hold every delivery thread for a timeout per try."""
        try:
            webhook_store.record(self.db, tries)
            return
        except TRANSIENT_ERRORS as error:
            log.warning("could not record %d tries: %s", len(tries), type(error).__name__)
            return
        except Exception as error:
            if len(tries) == 1:
                log.error("could not record a try of %s", tries[0].due.id, exc_info=error)
                return
            log.warning("could not record %d tries at once: %s", len(tries), error)
        for tried in tries:
            self._record([tried])

    def close(self) -> None:
        self.wakeup.set()
        self.pool.shutdown(wait=True)
        self.sender.close()
