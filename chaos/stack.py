"""The stack the storm runs against: PostgreSQL, the PSP, the API, two workers and the
projection runner, each its own `payments` process.

The PSP is our simulator, or (`psp="stripe"`) localstripe behind `payments psp-proxy`, which
injects the same faults; the PSP's own books (`books()`) are what the money is checked
against either way."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from chaos import localstripe, stripe_books
from chaos.localstripe import LocalStripe
from chaos.processes import (
    Process,
    api_server,
    base_env,
    free_port,
    psp_simulator,
    run_payments,
    webhook_receiver,
)
from chaos.workload import SIMULATOR_TOKENS

STRIPE_KEY, STRIPE_WEBHOOK_SECRET = "sk_test_chaos", "whsec_chaos"
SETTINGS = {
    "psp_timeout_s": "1",
    "stale_after_s": "2.5",
    "retry_base_s": "0.1",
    "retry_max_s": "1",
    "max_attempts": "6",
    "worker_interval_s": "0.1",
    "session_ttl_s": "8",
    "reconcile_after_s": "4",
    "db_connect_timeout_s": "2",
}


@dataclass
class ChaosStack:
    database_url: str
    """The base database; the stack lives in its own schema inside it."""
    schema: str
    settings: dict[str, str]
    processes: dict[str, Process] = field(default_factory=dict)
    api_url: str = ""
    sim_url: str = ""
    receiver_url: str = ""
    """Where the fault controls are: the simulator, or the proxy in front of localstripe."""
    psp: str = "simulator"
    localstripe: LocalStripe | None = None
    tokens: dict[str, str] = field(default_factory=lambda: dict(SIMULATOR_TOKENS))

    @classmethod
    def start(cls, database_url: str, seed: int, psp: str = "simulator") -> ChaosStack:
        schema = f"chaos_{seed}_{secrets.token_hex(3)}"
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        settings = SETTINGS | {
            "database_url": f"{database_url}?schema={schema}",
            "webhook_secret": secrets.token_urlsafe(16),
        }
        stack = cls(database_url, schema, settings, psp=psp)
        stack._launch()
        return stack

    def _launch(self) -> None:
        api_port, sim_port = free_port(), free_port()
        self.api_url, self.sim_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{sim_port}"
        if self.psp == "stripe":
            self._launch_stripe(sim_port)
        else:
            secret = self.settings["webhook_secret"]
            self.settings["psp_url"] = self.sim_url
            sim = psp_simulator(f"{self.api_url}/v1/webhooks/psp", secret, port=sim_port)
            self.processes["psp-sim"] = sim.start()
        migrate = self.run("migrate")
        if migrate.returncode != 0:
            raise RuntimeError(f"migrate failed: {migrate.stderr.decode()}")
        api = api_server(api_port, "--no-worker", "--no-projections", **self.settings)
        self.processes["api"] = self._named(api, "api").start()
        self._launch_receiver()
        for name, args in (
            ("worker-0", ["worker"]),
            ("worker-1", ["worker"]),
            ("projections", ["projections"]),
        ):
            process = Process(name, args, base_env(**self.settings))
            self.processes[name] = self._named(process, name).start()

    def _launch_receiver(self) -> None:
        """The marketplace's webhook receiver (a process), subscribed to every event, failing,
        hanging and answering slowly now and then."""
        receiver = webhook_receiver().start()
        self.receiver_url = str(receiver.health_url).removesuffix("/healthz")
        self.processes["receiver"] = receiver
        body = {"url": f"{self.receiver_url}/hooks", "events": ["*"]}
        created = httpx.post(f"{self.api_url}/v1/webhook-endpoints", json=body, timeout=30)
        created.raise_for_status()
        script = ["fail", "ok", "hang", "ok", "slow", "ok", "ok", "fail"] * 8
        control = {"secret": created.json()["secret"], "script": script, "hang_s": 2.5}
        httpx.put(f"{self.receiver_url}/_control", json=control, timeout=10).raise_for_status()

    def received(self) -> dict[str, Any]:
        """What the receiver got: verified events in arrival order, and unverified count."""
        answer: dict[str, Any] = httpx.get(f"{self.receiver_url}/_control", timeout=30).json()
        return answer

    def public_events(self) -> list[dict[str, Any]]:
        """Every public event, from the feed."""
        events: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params = {"limit": 500} | ({"after": after} if after else {})
            page = httpx.get(f"{self.api_url}/v1/events", params=params, timeout=30).json()
            events += page["data"]
            after = page["next_cursor"]
            if not page["has_more"]:
                return events

    def _launch_stripe(self, proxy_port: int) -> None:
        """localstripe, `payments psp-proxy` in front of it, and the settings to use them."""
        self.localstripe = localstripe.start(free_port())
        upstream = ["psp-proxy", "--upstream", self.localstripe.url, "--port", str(proxy_port)]
        proxy = Process("psp-proxy", upstream, base_env(), health_url=f"{self.sim_url}/healthz")
        self.processes["psp-proxy"] = proxy.start()
        self.settings |= {
            "psp": "stripe",
            "stripe_secret_key": STRIPE_KEY,
            "stripe_webhook_secret": STRIPE_WEBHOOK_SECRET,
            "stripe_api_base": self.sim_url,
        }
        api_port = self.api_url.rsplit(":", 1)[1]
        hooks = f"http://127.0.0.1:{api_port}/v1/webhooks/stripe"
        self.localstripe.add_webhook(hooks, STRIPE_WEBHOOK_SECRET)
        declining = stripe_books.declining_card(self.localstripe.url, STRIPE_KEY)
        self.tokens = {
            "decline_then_retry": declining,
            "abandon": declining,
            "processing": "pm_card_visa",  # localstripe has no asynchronous confirmation
        }

    def books(self) -> list[dict[str, Any]]:
        """What the PSP itself did, one entry per payment in the simulator's shape."""
        if self.localstripe is not None:
            return stripe_books.payments(self.localstripe.url, STRIPE_KEY)
        with self.simulator() as sim:
            payments: list[dict[str, Any]] = sim.get("/_control/payments").json()["payments"]
        return payments

    @staticmethod
    def _named(process: Process, name: str) -> Process:
        process.env["PGAPPNAME"] = f"chaos-{name}"
        return process

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """Run a `payments` command against the stack's store."""
        return run_payments(self.settings, *args)

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def revive(self, name: str) -> None:
        """Start a process again if it is not running."""
        process = self.processes[name]
        if process.popen is None or process.popen.poll() is not None:
            process.start()

    def cut_database(self) -> int:
        """Terminate every connection the stack holds; returns how many."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name LIKE 'chaos-%%'"
            ).fetchone()
        return int(row[0]) if row else 0

    def simulator(self) -> httpx.Client:
        return httpx.Client(base_url=self.sim_url, timeout=30)

    def stop(self, *, drop: bool = True) -> None:
        for process in self.processes.values():
            process.stop()
        if self.localstripe is not None:
            self.localstripe.stop()
        if drop:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(self.schema)))


def without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
