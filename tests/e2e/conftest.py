"""e2e fixtures: real `payments` processes (API, simulator, workers) on loopback, per store."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.db import Database, open_database
from bootstrap.settings import database_env
from chaos.processes import Process, api_server, base_env, free_port, psp_simulator, run_payments
from projections import queries
from tests.conftest import new_store_url

FAST = {
    "psp_timeout_s": "0.5",
    "retry_base_s": "0.05",
    "retry_max_s": "0.2",
    "max_attempts": "3",
    "worker_interval_s": "0.05",
    "stale_after_s": "1.5",
    "reconcile_after_s": "1",
    "db_connect_timeout_s": "1",
}
STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
FINAL = {
    "succeeded",
    "failed",
    "expired",
    "canceled",
    "refunded",
    "needs_review",
    "authorized",
    "requires_payment_method",
    "partially_refunded",
}


@dataclass
class Stack:
    """Clients for the running API and simulator, and the store they write to."""

    api: httpx.Client
    simulator: httpx.Client
    database_url: str
    settings: dict[str, str]
    secret: str
    processes: dict[str, Process] = field(default_factory=dict)

    @cached_property
    def store(self) -> Database:
        """The stack's database, read straight (closed by `stop_stack`)."""
        return open_database(database_env(self.database_url, pool_size=2), pool_size=2)

    def events_recorded(self) -> int:
        """How many events the store holds (straight from the database)."""
        return int(self.store.one(f"SELECT COUNT(*) FROM {self.store.events_table}")[0][0])  # noqa: S608

    def latest_position(self) -> int:
        """The newest notification id in the store (straight from the database)."""
        return queries.log_head(self.store)

    def wait_projected(self, timeout_s: float = 15.0) -> None:
        """Until every read model has applied every event stored so far. An order read with
        `min_position` may come from the store while they lag: a transaction anywhere on
        the server holds them back for a moment (design.md section 8)."""
        head = self.latest_position()
        deadline = time.monotonic() + timeout_s
        sql = "SELECT MIN(position) FROM projection_positions"
        while int(self.store.one(sql)[0][0] or 0) < head:
            if time.monotonic() > deadline:
                raise AssertionError(f"the read models did not reach position {head}")
            time.sleep(0.05)

    def settle_background_work(self, horizon_s: float = 3.0, timeout_s: float = 15.0) -> None:
        """Wait until no order has worker tasks due within `horizon_s` (earlier tests' orders
        may still be inquiring), so a test's scripted faults meet only its own requests."""
        deadline = time.monotonic() + timeout_s
        sql = "SELECT COUNT(*) FROM work_queue WHERE due_at < %s"
        while time.monotonic() < deadline:
            if not self.store.one(sql, (time.time() + horizon_s,))[0][0]:
                return
            time.sleep(0.1)

    def charges(self, reference: str | None = None) -> list[dict[str, Any]]:
        """What the PSP really did (for one order, when given)."""
        payments: list[dict[str, Any]] = self.simulator.get("/_control/payments").json()["payments"]
        return [p for p in payments if reference is None or p["reference"] == reference]

    def held(self, reference: str) -> list[dict[str, Any]]:
        """Payments for an order that took money (authorized or captured at some point)."""
        return [
            p for p in self.charges(reference) if p["auth_status"] in ("authorized", "captured")
        ]

    def faults(self, **settings: Any) -> None:
        self.simulator.put("/_control/faults", json=settings).raise_for_status()

    def order(self, order_id: str) -> dict[str, Any]:
        """The order with everything recorded so far (read-your-writes: the read model is
        asked for the store's newest position, and the API replays the order if it lags)."""
        fresh = {"min_position": self.latest_position()}
        response = self.api.get(f"/v1/payment-orders/{order_id}", params=fresh)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def events(self, order_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.api.get(f"/v1/payment-orders/{order_id}/events").json()[
            "events"
        ]
        return events

    def wait_for(
        self, order_id: str, done: Callable[[dict[str, Any]], bool], timeout_s: float = 20.0
    ) -> dict[str, Any]:
        """Poll the order until `done(order)`; fail with its history if it never is."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            order = self.order(order_id)
            if done(order):
                return order
            time.sleep(0.1)
        history = [e["type"] for e in self.events(order_id)]
        raise AssertionError(
            f"order {order_id} stuck at {self.order(order_id)['status']}: {history}"
        )

    def webhook(
        self, event: dict[str, Any], *, timestamp: int | None = None, secret: str | None = None
    ) -> httpx.Response:
        """POST a webhook to the API, signed like the PSP signs them."""
        body = json.dumps(event).encode()
        t = int(time.time()) if timestamp is None else timestamp
        digest = hmac.new((secret or self.secret).encode(), f"{t}.".encode() + body, hashlib.sha256)
        headers = {
            "PSP-Signature": f"t={t},v1={digest.hexdigest()}",
            "Content-Type": "application/json",
        }
        return self.api.post("/v1/webhooks/psp", content=body, headers=headers)

    def restart(self, name: str, **overrides: str) -> None:
        """Start a process again (after a crash), optionally with other settings."""
        process = self.processes[name]
        process.stop()
        process.env = process.env | {f"PAYMENTS_{k.upper()}": v for k, v in overrides.items()}
        process.start()

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """Run a `payments` command against this stack's store."""
        return run_payments(self.settings, *args)


def start_stack(
    request: pytest.FixtureRequest, directory: Path, store: str, workers: int = 0, **overrides: str
) -> Stack:
    """`payments psp-sim`, `payments migrate`, `payments serve` (+ `payments worker`s)."""
    database_url = new_store_url(request, store, directory)
    secret = secrets.token_urlsafe(16)
    port = free_port()
    settings = FAST | overrides | {"database_url": database_url, "webhook_secret": secret}
    settings.setdefault("public_url", f"http://127.0.0.1:{port}")
    sim = psp_simulator(f"http://127.0.0.1:{port}/v1/webhooks/psp", secret).start()
    assert sim.health_url is not None
    sim_url = sim.health_url.removesuffix("/healthz")
    settings["psp_url"] = sim_url
    migrate = run_payments(settings, "migrate")
    assert migrate.returncode == 0, migrate.stderr.decode()
    api = api_server(port, **settings)
    api.env["PGAPPNAME"] = f"payments-api-{port}"
    api.start()
    processes = {"psp-sim": sim, "api": api}
    for n in range(workers):
        processes[f"worker-{n}"] = Process(f"worker-{n}", ["worker"], base_env(**settings)).start()
    return Stack(
        api=httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30),
        simulator=httpx.Client(base_url=sim_url, timeout=30),
        database_url=database_url,
        settings=settings,
        secret=secret,
        processes=processes,
    )


def stop_stack(stack: Stack, *, audit: bool = True) -> None:
    """Stop the processes; first prove, with `payments audit`, that everything the module
    did left a store whose read models and ledger equal a replay."""
    try:
        if audit:
            report = stack.run("audit", "--json")
            assert report.returncode == 0, (
                report.stdout.decode()[-3000:] + report.stderr.decode()[-2000:]
            )
    finally:  # a failed audit must not leave the processes running (they hold connections)
        stack.api.close()
        stack.simulator.close()
        stack.store.close()
        for process in stack.processes.values():
            process.stop()


@pytest.fixture(scope="module", params=STORES)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The default stack for a test module, once per store."""
    started = start_stack(request, tmp_path_factory.mktemp("e2e"), request.param)
    yield started
    stop_stack(started)


@pytest.fixture
def sim(stack: Stack) -> httpx.Client:
    """The simulator's control API, reset before each test (once earlier tests' orders have
    stopped calling it)."""
    stack.settle_background_work()
    stack.simulator.post("/_control/reset").raise_for_status()
    return stack.simulator
