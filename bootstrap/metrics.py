"""Prometheus metrics: PSP outcomes and latency, worker tasks, shed requests, review depth,
lags.

Each container has its own registry (so tests can build many); `GET /metrics` renders
`Metrics.exposed`: that registry, or in the processes of one `payments serve` (started with
PROMETHEUS_MULTIPROC_DIR set: bootstrap/shared_counters.py) every process's counters
summed, so that a scrape answered by any of them gives the same totals.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from adapters.db import Database
from projections import dashboard, work_queue
from projections.runner import ProjectionRunner

_SHARING: set[int] = set()
"""Processes that made their Metrics in shared mode: in the shared files each series is one
entry per process, and a second Metrics would overwrite the first one's counts with its own."""


def _in_shared_mode() -> bool:
    """Whether this process's counters live in the shared directory: decided when
    prometheus_client was imported (a process that sets the directory only for its
    children keeps its own in memory)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    exposed: CollectorRegistry = field(init=False)
    """What a scrape renders: `registry`, or in shared mode every process's counters (this
    one's included) and this process's gauges."""

    latency: Collector = field(init=False)
    """The PSP latency histogram for the dashboard: every process's in shared mode."""

    def __post_init__(self) -> None:
        self.exposed = self.registry
        shared = None
        if _in_shared_mode():
            if os.getpid() in _SHARING:  # both would write the same entries: counts lost
                raise RuntimeError("one Metrics per process when counters are shared")
            _SHARING.add(os.getpid())
            self.exposed = CollectorRegistry()
            shared = MultiProcessCollector(self.exposed)  # type: ignore[no-untyped-call]
        self.psp_calls = Counter(
            "payments_psp_calls",
            "PSP calls by operation and outcome",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.psp_seconds = Histogram(
            "payments_psp_call_seconds",
            "PSP call latency",
            ["operation"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.latency = _Named(shared, "payments_psp_call_seconds") if shared else self.psp_seconds
        self.worker_tasks = Counter(
            "payments_worker_tasks",
            "Recovery worker steps taken (retries, inquiries, ...)",
            ["task"],
            registry=self.registry,
        )
        self.requests_shed = Counter(
            "payments_requests_shed",
            "API requests refused with 503 overloaded (PAYMENTS_MAX_IN_FLIGHT)",
            registry=self.registry,
        )

    def watch(self, db: Database, runner: ProjectionRunner) -> None:
        """Also report gauges read from the database at scrape time."""
        self.exposed.register(_StoreGauges(db, runner))


class _Named(Collector):
    """One metric of another collector."""

    def __init__(self, source: Collector, name: str) -> None:
        self.source = source
        self.name = name

    def collect(self) -> Iterator[Metric]:
        return (metric for metric in self.source.collect() if metric.name == self.name)


class _StoreGauges(Collector):
    def __init__(self, db: Database, runner: ProjectionRunner) -> None:
        self.db = db
        self.runner = runner

    def _held_seconds(self) -> float:
        if self.db.dialect != "postgres":
            return 0.0  # SQLite readers never wait for a transaction
        rows = self.db.one(
            "SELECT COALESCE(EXTRACT(EPOCH FROM MAX(clock_timestamp() - xact_start)), 0) "
            "FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
        )
        return float(rows[0][0])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        behind = self.runner.behind()
        with self.db.read() as tx:
            review = tx.execute(dashboard.IN_REVIEW_SQL)
            oldest = work_queue.oldest_due_at(tx)
        late = max(0.0, time.time() - oldest) if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "payments_manual_review_orders", "Orders awaiting an operator", value=int(review[0][0])
        )
        yield GaugeMetricFamily(
            "payments_worker_lag_seconds", "How late the oldest due work is", value=late
        )
        yield GaugeMetricFamily(
            "payments_log_held_seconds",
            "Age of the oldest write transaction on the server: it holds back every reader of "
            "the event log (docs/design.md section 8)",
            value=self._held_seconds(),
        )
        yield GaugeMetricFamily(
            "payments_projection_lag_events",
            "Events not yet projected",
            value=behind,
        )
