"""The benchmarked stack: a fresh PostgreSQL database, the simulator with a small fixed
latency, and `payments serve --workers N` (which also runs the worker and the projections)."""

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
        return f"{self.admin_url.rsplit('/', 1)[0]}/{self.database}"

    @classmethod
    def start(
        cls, admin_url: str, workers: int, psp_latency_ms: int, extra: dict[str, str]
    ) -> BenchStack:
        database = f"bench_{secrets.token_hex(4)}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        stack = cls(admin_url, database, {})
        stack.settings = {
            "database_url": stack.database_url,
            "webhook_secret": secrets.token_urlsafe(16),
            "db_pool_size": "20",
            "log_format": "text",
            "access_log": "false",  # as the bare FastAPI baseline, which logs no requests
        } | extra
        stack._launch(workers, psp_latency_ms)
        return stack

    def _launch(self, workers: int, psp_latency_ms: int) -> None:
        if self.settings.get("psp") == "stripe":
            self.localstripe = localstripe.start(free_port())
            self.settings["stripe_api_base"] = self.localstripe.url
            self.settings["stripe_secret_key"] = "sk_test_bench"  # noqa: S105 - localstripe takes any
        else:
            self._launch_simulator(psp_latency_ms)
        subprocess.run(
            [str(BIN / "payments"), "migrate"], env=base_env(**self.settings), check=True
        )
        port = free_port()
        api = api_server(port, "--workers", str(workers), **self.settings)
        self.processes.append(api.start(timeout_s=60))
        self.api_url = f"http://127.0.0.1:{port}"

    def _launch_simulator(self, psp_latency_ms: int) -> None:
        sim = psp_simulator(None, self.settings["webhook_secret"], webhooks="async").start()
        self.settings["psp_url"] = str(sim.health_url).removesuffix("/healthz")
        self.processes.append(sim)
        httpx.put(
            f"{self.settings['psp_url']}/_control/faults", json={"latency_ms": psp_latency_ms}
        )

    def app_settings(self) -> Settings:
        """Settings for in-process work against the same store (catch-up, audit)."""
        return Settings(database_url=self.database_url, psp_url=self.settings.get("psp_url"))

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        if self.localstripe is not None:
            self.localstripe.stop()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.database)
                )
            )
