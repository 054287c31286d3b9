"""`payments serve` as a user starts it: on PostgreSQL one HTTP process per core, on SQLite
one; either way a checkout succeeds and logs one line, and the access log is off."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bench.cpu import processes
from chaos.processes import Process, base_env, free_port, psp_simulator
from tests.conftest import new_store_url
from tests.e2e.conftest import FAST

pytestmark = pytest.mark.e2e
CART = {
    "buyer_id": "buyer-1",
    "currency": "EUR",
    "items": [{"seller_id": "s1", "sku": "mug", "quantity": 1, "unit_amount": 1000}],
    "payment_method": "pm_card_visa",
}


def children(pid: int) -> list[int]:
    return [child for child, (parent, _, _) in processes().items() if parent == pid]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_serve_with_its_defaults(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    port = free_port()
    url = new_store_url(request, kind, tmp_path)
    server = Process(
        "api",
        ["serve", "--port", str(port)],
        base_env(database_url=url) | {"TMPDIR": str(tmp_path)},
        health_url=f"http://127.0.0.1:{port}/healthz",
    )
    server.start(timeout_s=60)
    try:
        assert len(list(tmp_path.glob("payments-metrics-*"))) == 1  # its processes' counters
        assert server.popen is not None
        cores = len(os.sched_getaffinity(0))
        # uvicorn's children, plus the resource tracker multiprocessing starts beside them
        servers = [c for c in children(server.popen.pid) if "spawn_main" in _cmdline(c)]
        assert len(servers) == (cores if kind == "postgres" and cores > 1 else 0)
        key = str(uuid.uuid4())
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/checkouts",
            json=CART,
            headers={"Idempotency-Key": key},
            timeout=30,
        )
        assert answer.status_code == 201 and answer.json()["status"] == "succeeded"
    finally:
        _stop(server)
    log = server.log_path.read_text()
    order_id = answer.json()["id"]
    lines = [line for line in log.splitlines() if order_id in line]
    assert len(lines) == 1 and '"psp authorize 1: captured"' in lines[0]  # one line, ours
    assert "POST /v1/checkouts" not in log  # no access log by default
    assert not list(tmp_path.glob("payments-metrics-*"))  # removed when stopped (SIGTERM)
    # Stopped between steps, in one process as with several: SIGTERM ends in a clean exit
    # after the worker and the projection runner have finished (not killed by the signal).
    assert server.popen is not None and server.popen.returncode == 0
    assert log.rstrip().endswith('"stopped: the worker and the projection runner have finished"}')


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.postgres
def test_every_process_of_serve_counts_into_every_scrape(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """With `--workers 2` a scrape is answered by either HTTP process; each must give the
    totals of both and of the parent's recovery worker (a checkout counted only by the
    process that took it would make Prometheus see counters fall and rise between scrapes,
    and the worker's inquiries would be missing)."""
    port, checkouts = free_port(), 16
    secret = "whsec-metrics"
    sim = psp_simulator(f"http://127.0.0.1:{port}/v1/webhooks/psp", secret).start()
    assert sim.health_url is not None
    sim_url = sim.health_url.removesuffix("/healthz")
    settings = FAST | {
        "database_url": new_store_url(request, "postgres", tmp_path),
        "psp_url": sim_url,
        "webhook_secret": secret,
        "psp_timeout_s": "2",  # no checkout times out on a busy machine, but the one below
        "stale_after_s": "2.5",
    }
    server = Process(
        "api",
        ["serve", "--port", str(port), "--workers", "2"],
        base_env(**settings) | {"TMPDIR": str(tmp_path)},
        health_url=f"http://127.0.0.1:{port}/healthz",
    )
    try:
        server.start(timeout_s=60)
        assert len(list(tmp_path.glob("payments-metrics-*"))) == 1  # where they count

        def checkout(_: int) -> httpx.Response:  # a connection each: both processes take some
            headers = {"Idempotency-Key": str(uuid.uuid4())}
            url = f"http://127.0.0.1:{port}/v1/checkouts"
            return httpx.post(url, json=CART, headers=headers, timeout=30)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(checkout, range(checkouts)))
        assert {answer.status_code for answer in answers} == {201}
        # One more whose answer is lost: the parent's worker asks the PSP what became of it.
        faults = {"script": ["timeout"], "hang_ms": 4000, "webhook_events": "async"}
        httpx.put(f"{sim_url}/_control/faults", json=faults).raise_for_status()
        answers.append(checkout(0))
        for answer in answers:  # nothing left to count while the scrapes run
            _wait_until_paid(port, answer.json()["id"])
        seen = [_counters(httpx.get(f"http://127.0.0.1:{port}/metrics").text) for _ in range(12)]
    finally:
        _stop(server)
        sim.stop()
    assert all(counters == seen[0] for counters in seen)  # whichever process answered
    authorize = sum(v for k, v in seen[0].items() if 'operation="authorize"' in k)
    assert authorize >= checkouts + 1  # the children's calls
    assert seen[0]['payments_worker_tasks_total{task="inquire"}'] >= 1  # the parent's
    assert server.popen is not None and server.popen.returncode is not None
    assert not list(tmp_path.glob("payments-metrics-*"))  # removed when serve stops


def _stop(server: Process) -> None:
    """SIGTERM, and time for the children to drain on a busy machine; then `stop` (which
    kills what is left)."""
    if server.popen is not None and server.popen.poll() is None:
        server.popen.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.popen.wait(30)
    server.stop()


def _wait_until_paid(port: int, order_id: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        url = f"http://127.0.0.1:{port}/v1/payment-orders/{order_id}"
        if httpx.get(url).json()["status"] == "succeeded":
            return
        time.sleep(0.1)
    raise AssertionError(f"order {order_id} was never paid")


def _counters(text: str) -> dict[str, float]:
    """The counters of a scrape (the gauges move with the clock and the whole server)."""
    return {
        series: float(value)
        for series, _, value in (line.rpartition(" ") for line in text.splitlines())
        if series.startswith(("payments_psp_calls_total", "payments_worker_tasks_total"))
    }
