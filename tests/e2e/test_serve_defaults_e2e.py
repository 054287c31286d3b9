"""`payments serve` as a user starts it: on PostgreSQL one HTTP process per core, on SQLite
one; either way a checkout succeeds and logs one line, and the access log is off."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bench.cpu import processes
from chaos.processes import Process, base_env, free_port
from tests.conftest import new_store_url

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
        base_env(database_url=url),
        health_url=f"http://127.0.0.1:{port}/healthz",
    )
    server.start(timeout_s=60)
    try:
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
        server.stop()
    log = server.log_path.read_text()
    order_id = answer.json()["id"]
    lines = [line for line in log.splitlines() if order_id in line]
    assert len(lines) == 1 and '"psp authorize 1: captured"' in lines[0]  # one line, ours
    assert "POST /v1/checkouts" not in log  # no access log by default


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.postgres
def test_every_http_process_reports_the_counters_of_all(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """With `--workers 2` a scrape is answered by either process; each must give the
    totals of both (a checkout counted only by the process that took it would make
    Prometheus see counters fall and rise between scrapes)."""
    port, checkouts = free_port(), 16
    env = base_env(database_url=new_store_url(request, "postgres", tmp_path))
    server = Process(
        "api",
        ["serve", "--port", str(port), "--workers", "2", "--no-worker"],
        env | {"TMPDIR": str(tmp_path)},
        health_url=f"http://127.0.0.1:{port}/healthz",
    )
    server.start(timeout_s=60)
    try:
        assert len(list(tmp_path.glob("payments-metrics-*"))) == 1  # the children's counters

        def checkout(_: int) -> int:  # a connection each, so both processes take some
            key = str(uuid.uuid4())
            headers = {"Idempotency-Key": key}
            url = f"http://127.0.0.1:{port}/v1/checkouts"
            return httpx.post(url, json=CART, headers=headers, timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(checkout, range(checkouts))) == {201}
        seen = [_captured(httpx.get(f"http://127.0.0.1:{port}/metrics").text) for _ in range(12)]
    finally:
        server.stop()
    assert seen == [checkouts] * 12
    assert not list(tmp_path.glob("payments-metrics-*"))  # removed when serve stops


def _captured(text: str) -> float:
    series = 'payments_psp_calls_total{operation="authorize",outcome="captured"}'
    values = [line.split()[-1] for line in text.splitlines() if line.startswith(series)]
    assert len(values) == 1, text
    return float(values[0])
