"""What our figures are held to, measured in the same run on the same machine.

- pgbench running the SQL writes one checkout makes (two transactions under the event
  table's lock, three events) against a copy of the event table;
- a bare FastAPI GET with the same uvicorn settings;
- the eventsourcing library's own ProjectionRunner (one transaction per event);
- the library's raw read-and-decode rate of the notification log.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time

import httpx
import psycopg

from bench import wrk
from chaos.processes import base_env, free_port

# A checkout writes twice, each time one call of the event store's insert function
# (adapters/event_store.py): Placed with AuthorizationRequested, then the outcome. The sizes are
# those of real events (bytes of JSON); the topics are the events' stored names.
CHECKOUT_SQL = """SELECT gen_random_uuid() AS oid \\gset
SELECT id FROM pgbench_insert_events_uuid(
  ARRAY[:oid, :oid]::uuid[], ARRAY[1, 2]::bigint[],
  ARRAY['PaymentOrder.Placed', 'PaymentOrder.AuthorizationRequested'],
  ARRAY[convert_to(repeat('p', 780), 'UTF8'), convert_to(repeat('a', 370), 'UTF8')]) AS id;
SELECT id FROM pgbench_insert_events_uuid(
  ARRAY[:oid]::uuid[], ARRAY[3]::bigint[],
  ARRAY['PaymentOrder.Captured'],
  ARRAY[convert_to(repeat('c', 330), 'UTF8')]) AS id;
"""


def pgbench_checkout_writes(database_url: str, clients: int, seconds: float) -> tuple[float, int]:
    """Checkouts' worth of writes per second that PostgreSQL sustains through pgbench, with
    as many clients as our best run had connections (fewer if the server has no room).

    pgbench calls a copy of our insert function (same body, read back from the server)
    that writes to a copy of the events table, so the log the bench reads stays ours."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS pgbench_events")
        conn.execute("CREATE TABLE pgbench_events (LIKE payments_events INCLUDING ALL)")
        conn.execute("CREATE SEQUENCE IF NOT EXISTS pgbench_events_seq")
        conn.execute(
            "ALTER TABLE pgbench_events ALTER notification_id "
            "SET DEFAULT nextval('pgbench_events_seq')"
        )
        found = conn.execute(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p "
            "WHERE p.proname = 'payments_insert_events_uuid'"
        ).fetchone()
        if found is None:
            raise RuntimeError("no payments_insert_events_uuid: run `payments migrate` first")
        definition = str(found[0]).replace("payments_insert_events", "pgbench_insert_events")
        conn.execute(definition.replace("payments_events", "pgbench_events"))
        row = conn.execute(
            "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity"
        ).fetchone()
    room = (row[0] if row else clients) - 5  # superuser_reserved_connections, and a margin
    clients = max(1, min(clients, room))
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
        script.write(CHECKOUT_SQL)
        script.flush()
        done = subprocess.run(
            [
                "pgbench",
                "-n",
                "-M",
                "prepared",
                "-c",
                str(clients),
                "-j",
                "2",
                "-T",
                str(max(1, round(seconds))),
                "-f",
                script.name,
                database_url,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    match = re.search(r"tps = ([0-9.]+)", done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(
            f"pgbench failed ({done.returncode}):\n{done.stdout}{done.stderr[-2000:]}"
        )
    return float(match.group(1)), clients


def bare_fastapi_reads(workers: int, connections: int, seconds: float, ids_file: str) -> wrk.Load:
    """A bare FastAPI GET under the same uvicorn settings and the same load."""
    port = free_port()
    args = [
        "-m",
        "uvicorn",
        "bench.bare_app:create",
        "--factory",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(
        [sys.executable, *args],
        env=base_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        return wrk.run(f"http://127.0.0.1:{port}", "read.lua", connections, seconds, ids_file)
    finally:
        server.terminate()
        server.wait(10)


def _wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/payment-orders/x", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the bare FastAPI server did not start")
