"""The outbound webhook worker: delivers public events to the marketplace's endpoints.

At least once and in order per order (a later event of an order waits for the earlier one at
the same endpoint); retried with exponential backoff and full jitter until
PAYMENTS_OUTBOUND_GIVE_UP_AFTER_S after the first try, then the endpoint is disabled. Each
delivery is leased before it is sent, so several workers never send one event to one
endpoint at once, and a worker killed mid-delivery leaves a lease that simply runs out.
Deliveries go out on a small thread pool, at most PER_ENDPOINT at once per endpoint and
PER_FAILING_ENDPOINT once its deliveries fail, so a slow or dead endpoint holds only a small
share and never the checkout path (another thread).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from adapters import webhook_store
from adapters.db import Database
from adapters.outbound import Sender
from projections import public_events
from workers.loop import run_until_stopped

log = logging.getLogger("payments.outbound")
BATCH = 128
THREADS = 16
PER_ENDPOINT = 16
"""Deliveries at once to one endpoint that is answering well..."""
PER_FAILING_ENDPOINT = 2
"""...and to one whose due delivery has failed before: a slow or dead endpoint holds at most
this many threads, so the others keep flowing."""


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
    ) -> None:
        self.db = db
        self.sender = sender
        self.policy = policy
        self.interval_s = interval_s
        self.rand = rand or random.Random()  # noqa: S311 - jitter, not security
        self.pool = ThreadPoolExecutor(THREADS, thread_name_prefix="outbound")

    def run_forever(self, stop: threading.Event) -> None:
        """Deliver until `stop`; a failing pass is logged and retried."""
        run_until_stopped(stop, self.run_once, self.interval_s, log)

    def run_once(self) -> int:
        """Send every delivery due now (at most PER_ENDPOINT per endpoint); how many."""
        now = time.time()
        per_endpoint: dict[str, int] = defaultdict(int)
        chosen = []
        for due in webhook_store.due(self.db, now, BATCH):
            cap = PER_FAILING_ENDPOINT if due.tries else PER_ENDPOINT
            if per_endpoint[due.endpoint_id] >= cap:
                continue
            if webhook_store.claim(self.db, due.id, now, self.policy.lease_s):
                per_endpoint[due.endpoint_id] += 1
                chosen.append(due)
        bodies = public_events.bodies(self.db, [d.event_id for d in chosen])
        list(self.pool.map(lambda d: self._deliver_safely(d, bodies.get(d.event_id)), chosen))
        return len(chosen)

    def _deliver_safely(self, due: webhook_store.Due, body: str | None) -> None:
        """One delivery on its own: whatever goes wrong with it stays with it (its lease
        runs out and it is tried again), never stopping the others."""
        try:
            self._deliver(due, body)
        except Exception as error:
            log.error(
                "delivery %s failed", due.id, exc_info=error, extra={"endpoint": due.endpoint_id}
            )

    def _deliver(self, due: webhook_store.Due, body: str | None) -> None:
        if body is None:  # the event is gone (a rebuild in progress): try again later
            return
        attempt = self.sender.send(due.url, due.secret, due.event_id, body.encode())
        at = time.time()
        first = due.first_try_at or at
        give_up = not attempt.delivered and at - first >= self.policy.give_up_after_s
        next_at = (
            None if attempt.delivered else self.policy.next_try(due.tries, at, self.rand.random())
        )
        webhook_store.record(
            self.db,
            due,
            at,
            (attempt.status_code, attempt.error, attempt.latency_ms),
            next_at,
            give_up,
        )
        if not attempt.delivered:
            log.info(
                "webhook %s to %s failed: %s",
                due.event_id,
                due.endpoint_id,
                attempt.error or attempt.status_code,
                extra={"endpoint": due.endpoint_id},
            )

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.sender.close()
