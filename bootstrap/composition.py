"""The composition root: the one place that builds the application, the PSP client, the read
side and the background runners.

Nothing connects to anything at import time; `build()` does, and `Container.close()` undoes it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from adapters.db import Database, open_database, postgres_conninfo
from adapters.listen import listen
from adapters.outbound import Sender
from adapters.psp.metered import MeteredPSP
from adapters.psp.simulator_notifications import SimulatorNotifications
from adapters.psp.stripe_notifications import StripeNotifications
from adapters.psp.unavailable import NoPSP
from app.application import PaymentsApp, call_key
from app.reconciliation import ReconciliationApp
from bootstrap import failpoints
from bootstrap.metrics import Metrics
from bootstrap.read_side import open_app
from bootstrap.recent import IN_FLIGHT_FILE, CallsInFlight, FinalCalls, RecentIds
from bootstrap.settings import Settings
from bootstrap.settlement import connector
from domain.psp import NotificationParser, PSPPort
from projections.catalog import all_projections
from projections.log import EventLog
from projections.runner import ProjectionRunner
from workers.outbound import OutboundPolicy, OutboundWorker
from workers.reconcile import ReconcileWorker
from workers.recovery import RecoveryWorker


@dataclass
class Container:
    """Everything a process needs, built from settings."""

    settings: Settings
    app: PaymentsApp
    psp: PSPPort
    notifications: dict[str, NotificationParser]
    """Each connector's webhook reader, by the route's name (/v1/webhooks/<name>)."""
    db: Database
    runner: ProjectionRunner
    worker: RecoveryWorker
    metrics: Metrics
    outbound: OutboundWorker
    stop: threading.Event = field(default_factory=threading.Event)
    recent_webhooks: RecentIds = field(default_factory=lambda: RecentIds(50_000))
    """PSP event ids this process applied (or found duplicate) lately: a copy of one is
    answered `duplicate` without loading its order."""
    final_calls: FinalCalls = field(default_factory=lambda: FinalCalls.of_this_serve(50_000))
    """Calls this process, or another of its `serve`, recorded a final outcome for
    (`PaymentsApp.on_final`; bootstrap/recent.py)."""
    threads: list[threading.Thread] = field(default_factory=list)
    stuck_after_s: float = 30.0
    """How long the in-process projection runner may go without completing a batch (or
    finding the log caught up) before the health check calls it stuck."""

    @cached_property
    def reconciliation(self) -> ReconciliationApp:
        """Settlement batches and their breaks, in their own table (created on first use)."""
        env = self.settings.event_store_env(create_tables=True)
        env.pop("APPLICATION_RECORDER_TOPIC", None)  # the library's recorder, its own table
        if env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
            env["APPLICATION_RECORDER_TOPIC"] = "adapters.event_store:ReconciliationSQLiteRecorder"
        late_after = timedelta(seconds=self.settings.settlement_grace_s)
        return ReconciliationApp(env, self.app, late_after)

    def projections_stuck(self) -> float | None:
        """Seconds since the in-process runner last made progress, if that is too long
        (None when it is fine or runs in another process)."""
        if not any(t.name == "projections" and t.is_alive() for t in self.threads):
            return None
        idle = time.monotonic() - self.runner.last_progress
        return idle if idle > self.stuck_after_s else None

    def start_projections(self, *, listen_to_database: bool = False) -> None:
        """Run the projection runner in this process, woken by every save made here and,
        with `listen_to_database`, by other processes' saves (PostgreSQL NOTIFY)."""
        self.app.listeners.append(lambda _: self.runner.wakeup.set())
        env = self.settings.event_store_env()
        if listen_to_database and env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
            self.threads.append(listen(postgres_conninfo(env), self.runner.wakeup, self.stop))
        self._spawn("projections", lambda: self.runner.run_forever(self.stop))

    def start_worker(self) -> None:
        """Run the recovery worker and the outbound webhook deliveries in this process."""
        self._spawn("worker", lambda: self.worker.run_forever(self.stop))
        self._spawn("outbound", lambda: self.outbound.run_forever(self.stop))
        self.runner.committed.append(self.outbound.wakeup.set)
        settings = self.settings
        if settings.reconcile_interval_s:
            reconcile = ReconcileWorker(settings, self.reconciliation)
            self._spawn("reconcile", lambda: reconcile.run_forever(self.stop))

    def _spawn(self, name: str, target: object) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self.threads.append(thread)

    async def close_async(self) -> None:
        """Close what the server's event loop opened (the PSP's async session)."""
        if isinstance(self.psp, MeteredPSP):
            await self.psp.close_async()

    def close(self) -> None:
        self.stop.set()
        self.runner.wakeup.set()
        self.outbound.wakeup.set()
        for thread in self.threads:
            thread.join(timeout=10)
        if isinstance(self.psp, MeteredPSP):
            self.psp.close()
        self.outbound.close()
        if "reconciliation" in self.__dict__:
            self.reconciliation.close()
        self.app.close()
        self.db.close()


def build(settings: Settings, *, psp_url: str | None = None, with_psp: bool = True) -> Container:
    """Build the container. `psp_url` overrides PAYMENTS_PSP_URL (the in-process simulator);
    `with_psp=False` builds a process that must never call the PSP (projections)."""
    env = settings.event_store_env()
    config = settings.payments_config()
    metrics = Metrics()
    psp: PSPPort = NoPSP()
    if with_psp:
        psp = MeteredPSP(connector(settings, psp_url), metrics.psp_calls, metrics.psp_seconds)
    app = open_app(settings, psp)
    app.failpoint = failpoints.killer(failpoints.parse(settings.failpoints))
    db = open_database(env, pool_size=read_side_pool(settings))
    runner = ProjectionRunner(db, EventLog(db, app.mapper), all_projections(config.timing))
    metrics.watch(db, runner)
    worker = RecoveryWorker(
        app, db, settings.worker_interval_s, on_task=lambda t: metrics.worker_tasks.labels(t).inc()
    )
    notifications: dict[str, NotificationParser] = {
        "psp": SimulatorNotifications(settings.webhook_secret.get_secret_value()),
        "stripe": StripeNotifications(settings.stripe_webhook_secret.get_secret_value()),
    }
    outbound = OutboundWorker(
        db,
        Sender(settings.outbound_timeout_s, allow_private=settings.outbound_private_ok),
        _outbound_policy(settings),
    )
    container = Container(settings, app, psp, notifications, db, runner, worker, metrics, outbound)
    app.in_flight = CallsInFlight.of_this_serve(IN_FLIGHT_FILE)
    app.on_final = lambda order_id, kind, number: container.final_calls.add(
        call_key(order_id, kind.value, number)
    )
    return container


def _outbound_policy(settings: Settings) -> OutboundPolicy:
    return OutboundPolicy(
        base_s=settings.outbound_retry_base_s,
        max_s=settings.outbound_retry_max_s,
        give_up_after_s=settings.outbound_give_up_after_s,
        timeout_s=settings.outbound_timeout_s,
    )


def read_side_pool(settings: Settings) -> int:
    """Connections for a process's read side (projections, status reads, the worker's
    queue): half the event store's."""
    return max(2, settings.db_pool_size // 2)
