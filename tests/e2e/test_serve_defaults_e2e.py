"""`payments serve` as a user starts it: on PostgreSQL one HTTP process per core, on SQLite
one; either way a checkout succeeds and logs one line, and the access log is off."""

from __future__ import annotations

import os
import uuid
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
