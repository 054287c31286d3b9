"""The bench's CPU meter counts PostgreSQL's work even when the backend that did it ends
during the phase (as other tests' connections do while the smoke bench runs in the suite)."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from bench.cpu import snapshot

pytestmark = pytest.mark.postgres


def test_a_backend_that_ends_keeps_its_cpu_in_the_servers_total(postgres_database: str) -> None:
    conn = psycopg.connect(postgres_database)
    pid = conn.info.backend_pid
    conn.execute("SELECT count(*) FROM generate_series(1, 3000000)")  # some CPU of its own
    before = snapshot({})["postgres"]
    conn.close()  # the backend ends; the postmaster reaps it
    deadline = time.monotonic() + 10
    while (Path("/proc") / str(pid)).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (Path("/proc") / str(pid)).exists()
    after = snapshot({})["postgres"]
    assert after >= before  # it only grows; the living backends' sum alone fell
