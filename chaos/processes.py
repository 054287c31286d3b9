"""Start the real `payments` processes on loopback ports (the chaos harness and e2e tests)."""

from __future__ import annotations

import os
import random
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


TEST_PORTS = range(20_000, 32_000)
"""Below the kernel's ephemeral range (32768 up, by default), where outgoing connections
take their ports: a port chosen for a server that has yet to bind it cannot be taken by one."""
_cursor = [-1]


def free_port() -> int:
    """A loopback port nobody listens on. In a pytest-xdist worker, the next free one of
    that worker's own share of TEST_PORTS, so that two workers never pick the same port
    before either binds it; otherwise whatever the kernel gives."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")
    if not (worker.isascii() and worker.isdigit()):
        return _bindable(0)
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    share = len(TEST_PORTS) // workers
    first = TEST_PORTS.start + int(worker) % workers * share
    if _cursor[0] < 0:
        _cursor[0] = random.randrange(share)  # noqa: S311 - a new place each run, not a secret
    for _ in range(share):
        port = first + _cursor[0] % share
        _cursor[0] += 1
        try:
            return _bindable(port)
        except OSError:
            continue  # in use, or lingering after a test: the next one
    return _bindable(0)


def _bindable(port: int) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        found: int = sock.getsockname()[1]
        return found


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
