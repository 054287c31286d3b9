"""Start the real `payments` processes on loopback ports (the chaos harness and e2e tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    """One `payments ...` child process with its log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    health_url: str | None = None
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))
    popen: subprocess.Popen[bytes] | None = None
    program: list[str] | None = None
    """What runs `args` (default: our `payments` console script)."""

    def start(self, timeout_s: float = 20.0) -> Process:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(  # noqa: S603 - our own console script
            [*(self.program or [str(BIN / "payments")]), *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if self.health_url:
            self._wait_healthy(timeout_s)
        return self

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen is None or self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.logs()}")
            try:
                if httpx.get(str(self.health_url), timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become healthy:\n{self.logs()}")

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as in a crash."""
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def run_payments(settings: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run a `payments` command to completion with `settings` as PAYMENTS_* variables."""
    return subprocess.run(  # noqa: S603 - our own console script
        [str(BIN / "payments"), *args], env=base_env(**settings), capture_output=True, check=False
    )


def base_env(**settings: str) -> dict[str, str]:
    """The environment for a child: ours, minus any PAYMENTS_* leaking in, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
    return env | {f"PAYMENTS_{k.upper()}": v for k, v in settings.items()}


def psp_simulator(
    webhook_url: str | None, secret: str, port: int = 0, webhooks: str = "all", **settings: str
) -> Process:
    """`payments psp-sim` on `port` (a free one by default), signing with `secret`."""
    port = port or free_port()
    args = ["psp-sim", "--port", str(port), "--webhooks", webhooks]
    if webhook_url:
        args += ["--webhook-url", webhook_url]
    env = base_env(webhook_secret=secret, **settings)
    return Process("psp-sim", args, env, health_url=f"http://127.0.0.1:{port}/healthz")


def api_server(port: int, *extra_args: str, **settings: str) -> Process:
    """`payments serve` on `port` with `settings` as PAYMENTS_* variables; one server process
    unless `extra_args` say `--workers` (a killed parent would leave its children serving)."""
    workers = [] if "--workers" in extra_args else ["--workers", "1"]
    args = ["serve", "--port", str(port), *workers, *extra_args]
    health = f"http://127.0.0.1:{port}/healthz"
    return Process("api", args, base_env(**settings), health_url=health)


def webhook_receiver(port: int = 0) -> Process:
    """A marketplace's webhook receiver (chaos/receiver.py) on `port` (a free one by default)."""
    port = port or free_port()
    return Process(
        "receiver",
        ["--port", str(port)],
        base_env(),
        health_url=f"http://127.0.0.1:{port}/healthz",
        program=[sys.executable, "-m", "chaos.receiver"],
    )
