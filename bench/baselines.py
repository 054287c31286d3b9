"""What our figures are held to, measured in the same run on the same machine.

- pgbench running the SQL writes one checkout makes (two transactions, three events) as raw
  inserts, and through our insert function, against copies of the event table; and one
  insert per transaction through ours and through the locking insert it replaced (the
  write ceiling);
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

# A checkout writes twice: Placed with AuthorizationRequested, then the outcome. The sizes are
# those of real events (bytes of JSON); the topics are the events' stored names.
EVENTS = {
    "placed": ("1", "'PaymentOrder.Placed'", "convert_to(repeat('p', 780), 'UTF8')"),
    "requested": (
        "2",
        "'PaymentOrder.AuthorizationRequested'",
        "convert_to(repeat('a', 370), 'UTF8')",
    ),
    "captured": ("3", "'PaymentOrder.Captured'", "convert_to(repeat('c', 330), 'UTF8')"),
}
NEW_ID = "SELECT gen_random_uuid() AS oid \\gset\n"


def _call(function: str, *events: str) -> str:
    """One call of an insert function with `events` of one order."""
    versions, topics, states = (
        ", ".join(c) for c in zip(*(EVENTS[e] for e in events), strict=True)
    )
    oids = ", ".join([":oid"] * len(events))
    arrays = f"ARRAY[{oids}]::uuid[], ARRAY[{versions}]::bigint[], ARRAY[{topics}], ARRAY[{states}]"
    return f"SELECT id FROM {function}({arrays}) AS id;\n"  # noqa: S608 - our constants


def _insert(table: str, *events: str) -> str:
    """One plain INSERT of `events`: no lock, no notification, no function."""
    rows = ", ".join(
        f"(CAST(:oid AS uuid), {v}, {t}, {s})" for v, t, s in (EVENTS[e] for e in events)
    )
    columns = "originator_id, originator_version, topic, state"
    return f"INSERT INTO {table} ({columns}) VALUES {rows};\n"  # noqa: S608


SCRIPTS = {
    # a checkout's writes, as raw inserts: the floor of what PostgreSQL does for a checkout
    "checkout_raw": NEW_ID
    + _insert("pgbench_raw", "placed", "requested")
    + _insert("pgbench_raw", "captured"),
    # the same through our insert function
    "checkout_ours": NEW_ID
    + _call("pgbench_insert_events_uuid", "placed", "requested")
    + _call("pgbench_insert_events_uuid", "captured"),
    # the write ceiling: one insert (a checkout's first write) per transaction, through ours
    "insert_ours": NEW_ID + _call("pgbench_insert_events_uuid", "placed", "requested"),
    # ... and through the insert before issue 13 (table lock and NOTIFY in the transaction)
    "insert_locked": NEW_ID + _call("pgbench_locked_insert_events_uuid", "placed", "requested"),
}
LOCKED_FUNCTION = """
CREATE OR REPLACE FUNCTION pgbench_locked_insert_events_uuid(
  ids uuid[], versions bigint[], topics text[], states bytea[])
RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ BEGIN
SET LOCAL lock_timeout = '5s';
LOCK TABLE pgbench_locked IN EXCLUSIVE MODE;
NOTIFY pgbench_locked;
RETURN QUERY INSERT INTO pgbench_locked (originator_id, originator_version, topic, state)
SELECT * FROM unnest(ids, versions, topics, states) RETURNING notification_id;
END; $BODY$
"""


def prepare_pgbench(database_url: str) -> None:
    """Copies of the events table for pgbench to write to, so the log the bench reads
    stays ours: one for raw inserts, one for our insert function (a copy of it, read back
    from the server, with its epoch), one for the insert as it was before issue 13."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in ("pgbench_raw", "pgbench_events", "pgbench_locked"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} (LIKE payments_events INCLUDING ALL)")
            conn.execute(f"CREATE SEQUENCE IF NOT EXISTS {table}_seq")
            conn.execute(
                f"ALTER TABLE {table} ALTER notification_id SET DEFAULT nextval('{table}_seq')"
            )
        conn.execute("DROP TABLE IF EXISTS pgbench_events_epochs")
        conn.execute(
            "CREATE TABLE pgbench_events_epochs (LIKE payments_events_epochs INCLUDING ALL)"
        )
        conn.execute(
            "INSERT INTO pgbench_events_epochs (base, start_xid) "
            "VALUES (1024, pg_current_xact_id())"
        )
        found = conn.execute(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p "
            "WHERE p.proname = 'payments_insert_events_uuid'"
        ).fetchone()
        if found is None:
            raise RuntimeError("no payments_insert_events_uuid: run `payments migrate` first")
        definition = str(found[0]).replace("payments_insert_events", "pgbench_insert_events")
        conn.execute(definition.replace("payments_events", "pgbench_events"))
        conn.execute(LOCKED_FUNCTION)


def pgbench(database_url: str, script: str, clients: int, seconds: float) -> tuple[float, int]:
    """Transactions of SCRIPTS[`script`] per second that PostgreSQL sustains through
    pgbench, with `clients` clients (fewer if the server has no room); and the clients."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity"
        ).fetchone()
    room = (row[0] if row else clients) - 5  # superuser_reserved_connections, and a margin
    clients = max(1, min(clients, room))
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as file:
        file.write(SCRIPTS[script])
        file.flush()
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
                file.name,
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
