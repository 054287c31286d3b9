"""The benchmarked stack: a fresh PostgreSQL database, the simulator with a small fixed
latency sending a signed webhook for every payment, and `payments serve` with its defaults
(which also runs the worker and the projections)."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass, field

import httpx
import psycopg
from psycopg import sql

from bootstrap.settings import Settings
from chaos import localstripe
from chaos.localstripe import LocalStripe
from chaos.processes import BIN, Process, api_server, base_env, free_port, psp_simulator

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
WEBHOOK_DELAY_MS = 500
"""Each webhook leaves the simulator after a uniform 0-500 ms, as a real PSP's events follow
its answer. At 0 every webhook races the API's own record of the answer: both are applied
correctly, but the loser pays a conflict and a reload (docs/performance.md)."""


@dataclass
class BenchStack:
    admin_url: str
    database: str
    settings: dict[str, str]
    api_url: str = ""
    processes: list[Process] = field(default_factory=list)
    localstripe: LocalStripe | None = None

    @property
    def database_url(self) -> str:
        return database_url(self.admin_url, self.database)

    @classmethod
    def start(
        cls,
        admin_url: str,
        workers: str,
        psp_latency_ms: int,
        extra: dict[str, str],
    ) -> BenchStack:
        """`payments serve --workers <workers>` with its defaults plus `extra`, the simulator
        sending a webhook for every payment, on a new database."""
        stack = cls(admin_url, new_database(admin_url), {})
        stack.settings = {
            "database_url": stack.database_url,
            "webhook_secret": secrets.token_urlsafe(16),
        } | extra
        stack._launch(workers, psp_latency_ms)
        return stack

    def _launch(self, workers: str, psp_latency_ms: int) -> None:
        port = free_port()
        if self.settings.get("psp") == "stripe":
            self.localstripe = localstripe.start(free_port())
            self.settings["stripe_api_base"] = self.localstripe.url
            self.settings["stripe_secret_key"] = "sk_test_bench"  # noqa: S105 - localstripe takes any
        else:
            self._launch_simulator(psp_latency_ms, f"http://127.0.0.1:{port}/v1/webhooks/psp")
        subprocess.run(
            [str(BIN / "payments"), "migrate"], env=base_env(**self.settings), check=True
        )
        api = api_server(port, "--workers", workers, **self.settings)
        self.processes.append(api.start(timeout_s=60))
        self.api_url = f"http://127.0.0.1:{port}"

    def _launch_simulator(self, psp_latency_ms: int, webhook_url: str) -> None:
        secret = self.settings["webhook_secret"]
        sim = psp_simulator(webhook_url, secret, webhooks="all").start()
        self.settings["psp_url"] = str(sim.health_url).removesuffix("/healthz")
        self.processes.append(sim)
        self.set_psp_latency(psp_latency_ms)

    def set_psp_latency(self, latency_ms: int) -> None:
        """The simulator's latency from now on (its other faults: none; webhooks delayed)."""
        faults = {"latency_ms": latency_ms, "webhook_delay_ms": WEBHOOK_DELAY_MS}
        httpx.put(f"{self.settings['psp_url']}/_control/faults", json=faults).raise_for_status()

    def cpu_roots(self) -> dict[str, list[int]]:
        """The processes whose CPU the bench reports (PostgreSQL is counted by name)."""
        roots = {p.name: [p.popen.pid] for p in self.processes if p.popen is not None}
        return {"api": roots.get("api", []), "simulator": roots.get("psp-sim", [])}

    def app_settings(self) -> Settings:
        """Settings for in-process work against the same store (catch-up, audit)."""
        return Settings(database_url=self.database_url, psp_url=self.settings.get("psp_url"))

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        if self.localstripe is not None:
            self.localstripe.stop()
        drop_database(self.admin_url, self.database)


def new_database(admin_url: str, suffix: str = "") -> str:
    """A new, empty database on the admin URL's server (`bench_<random><suffix>`); its name."""
    name = f"bench_{secrets.token_hex(4)}{suffix}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def database_url(admin_url: str, name: str) -> str:
    """The URL of database `name` on the admin URL's server."""
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
