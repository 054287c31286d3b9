"""The event store's PostgreSQL recorder: inserts that take no lock, positions readers can trust.

**Positions from transaction ids.** The library's insert takes `LOCK TABLE … IN EXCLUSIVE
MODE` and sends `NOTIFY` inside the inserting transaction, so commits happen one at a time:
that capped one event table at ~3k inserts/s on this machine's pgbench, against ~9k for
plain inserts. The lock was there because positions came from a sequence: without it, an
event could commit after a later-numbered one, and a reader following positions would skip
it. Here a position is derived from the inserting transaction's id instead (`pg_current_
xact_id()`): `base + (xid - start) * SLOTS + n`, the n-th event of that transaction, within
the current *epoch* (`start`, `base`), so positions rise with transaction ids. A reader then
takes only positions below what the oldest transaction still running could write,
`base + (xmin - start) * SLOTS` with `xmin = pg_snapshot_xmin(pg_current_snapshot())`
(`settled_below_sql`): everything below it has committed or never will, and whatever
commits later lands above. The proof is in docs/design.md section 8; tests/integration/
test_log_order.py checks it against writers in threads and processes on every run.

An epoch starts when `payments migrate` finds none, or finds that transaction ids went
backwards (the store was restored into another server): it waits for every insert in
flight, and its base lies above every position taken, so positions keep rising across it.

**NOTIFY after the commit.** A NOTIFY serialises commits on the server's notification
queue (3.3k inserts/s against 9.3k). Other processes' runners are woken by one NOTIFY per
burst of inserts, sent by a thread of its own once they committed (`adapters.listen`).

**One round trip.** The insert is one call of a PL/pgSQL function on an autocommit
connection, its four columns sent as arrays in binary.

**Failing fast.** The library retries every query ten times, each waiting up to the pool
timeout: a request would hang for most of a minute while PostgreSQL is down, and the
server's threads with it. Three tries ride out a dropped connection but answer 503 in
seconds when the server is really unavailable. Instead of pinging the server before every
query (a round trip each), a failed try makes the pool check its idle connections, so the
connections a server restart broke are all dropped before the next try.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from typing import Any

import anyio.to_thread
import psycopg
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore
from psycopg.sql import SQL, Identifier

from adapters.db import LoopPool
from adapters.listen import CHANNEL, Notifier

TRIES = 3
WAIT_S = 0.2
INSERT_FUNCTION = "payments_insert_events"
EPOCHS_SUFFIX = "_epochs"
SLOTS = 1024
"""Positions per transaction id: a transaction may insert up to SLOTS - 1 events."""


def settled_below_sql(schema_table: str) -> str:
    """SQL for the position below which every event has committed or never will (positions
    from the inserts' transaction ids; see the module's docstring): the oldest transaction
    still running writes at or above it. No epoch yet (no migration since the old insert):
    every position is settled."""
    epochs = schema_table + EPOCHS_SUFFIX
    return (
        "COALESCE((SELECT GREATEST(base, base + (pg_snapshot_xmin(pg_current_snapshot())"  # noqa: S608
        f"::text::bigint - start_xid::text::bigint) * {SLOTS}) FROM {epochs} "
        "ORDER BY base DESC LIMIT 1), 9223372036854775807)"
    )


def _fewer_tries(undecorated: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(undecorated)
    def tried(self: FailFastPostgresRecorder, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(1, TRIES + 1):
            try:
                return undecorated(self, *args, **kwargs)
            except (InterfaceError, OperationalError):
                if attempt == TRIES:
                    raise
                self.datastore.pool.check()  # drop the connections the server closed
                time.sleep(WAIT_S * (0.95 + 0.1 * random.random()))  # noqa: S311 - jitter
        raise AssertionError("unreachable")

    return tried


def _library(method: Callable[..., Any]) -> Callable[..., Any]:
    """A library method without its ten-try decorator."""
    undecorated: Callable[..., Any] = method.__wrapped__  # type: ignore[attr-defined]
    return undecorated


class FailFastPostgresRecorder(PostgresApplicationRecorder):
    """PostgresApplicationRecorder inserting through one locking function call, with TRIES
    attempts per query instead of ten."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self._async = LoopPool()
        table = self.events_table_name
        names = {
            "function": Identifier(INSERT_FUNCTION + "_" + datastore.originator_id_type),
            "schema": Identifier(datastore.schema),
            "table": Identifier(table),
            "epochs": Identifier(table + EPOCHS_SUFFIX),
            "id_type": Identifier(datastore.originator_id_type),
        }
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{epochs} "
                "(base bigint PRIMARY KEY, start_xid xid8 NOT NULL)"
            ).format(**names),
            # A new epoch when there is none, or when transaction ids went backwards (the
            # store was restored into another server): after every insert in flight, and
            # above every position taken.
            SQL(
                "DO $EPOCH$ DECLARE latest xid8; BEGIN "
                "SELECT start_xid INTO latest FROM {schema}.{epochs} ORDER BY base DESC LIMIT 1; "
                "IF latest IS NULL OR latest >= pg_snapshot_xmax(pg_current_snapshot()) THEN "
                "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
                "INSERT INTO {schema}.{epochs} (base, start_xid) "
                "SELECT COALESCE(MAX(notification_id), 0) + {slots}, pg_current_xact_id() "
                "FROM {schema}.{table}; "
                "END IF; END $EPOCH$"
            ).format(slots=SLOTS, **names),
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}("
                "ids {id_type}[], versions bigint[], topics text[], states bytea[]) "
                "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ "
                "DECLARE "
                "tx bigint := pg_current_xact_id()::text::bigint; "
                "epoch record; "
                "used int := COALESCE(NULLIF(current_setting('payments.log_slots', true), ''),"
                " '0')::int; "
                "BEGIN "
                "SET LOCAL lock_timeout = '{timeout}s'; "
                "SELECT start_xid::text::bigint AS start, base INTO epoch "
                "FROM {schema}.{epochs} ORDER BY base DESC LIMIT 1; "
                "IF NOT FOUND OR tx < epoch.start THEN RAISE EXCEPTION "
                "'the event log has no epoch for this server''s transactions: "
                "run payments migrate'; END IF; "
                "IF used + cardinality(ids) >= {slots} THEN RAISE EXCEPTION "
                "'at most % events per transaction', {slots} - 1; END IF; "
                "PERFORM set_config('payments.log_slots', (used + cardinality(ids))::text, true); "
                "RETURN QUERY INSERT INTO {schema}.{table} "
                "(notification_id, originator_id, originator_version, topic, state) "
                "SELECT epoch.base + (tx - epoch.start) * {slots} + used + n, i, v, t, s "
                "FROM unnest(ids, versions, topics, states) WITH ORDINALITY AS u(i, v, t, s, n) "
                "RETURNING notification_id; "
                "END; $BODY$"
            ).format(timeout=datastore.lock_timeout, slots=SLOTS, **names),
        ]
        # Four plain arrays, sent in binary: half the client CPU of an array of composites.
        self.insert_statement = SQL(
            "SELECT id FROM {schema}.{function}(%b, %b, %b, %b) AS id"
        ).format(**names)
        self.notifier = Notifier(self._send_notify)

    def _send_notify(self) -> None:
        with self.datastore.get_connection() as conn:
            conn.execute(SQL("NOTIFY {}").format(Identifier(CHANNEL)))

    @_fewer_tries
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        columns = _columns(stored_events)
        with self.datastore.get_connection() as conn, conn.cursor(binary=True) as cursor:
            cursor.execute(self.insert_statement, columns, prepare=True)
            ids = [row["id"] for row in cursor.fetchall()]
        self.notifier.poke()
        return ids

    async def open_async(self, max_size: int) -> None:
        """A pool for `insert_events_async` in the running event loop (server startup)."""
        library_kwargs = self.datastore.pool.kwargs
        assert isinstance(library_kwargs, dict)  # noqa: S101 - the library sets a dict
        kwargs = {k: v for k, v in library_kwargs.items() if k != "row_factory"}
        await self._async.open(
            kwargs=kwargs | {"autocommit": True},
            min_size=1,
            max_size=max_size,
            timeout=self.datastore.pool.timeout,  # as the library's pool: fail, do not hang
        )

    async def close_async(self) -> None:
        await self._async.close()

    async def insert_events_async(self, stored_events: Sequence[StoredEvent]) -> Sequence[int]:
        """`insert_events` without a thread: the same statement, tries and errors (on a
        worker thread until `open_async` ran in this loop)."""
        pool = self._async.current()
        if pool is None:
            ids: Sequence[int] = await anyio.to_thread.run_sync(self.insert_events, stored_events)
            return ids
        columns = _columns(stored_events)
        for attempt in range(1, TRIES + 1):
            try:
                with _store_errors():
                    async with pool.connection() as conn, conn.cursor(binary=True) as cursor:
                        await cursor.execute(self.insert_statement, columns, prepare=True)
                        ids = [row[0] for row in await cursor.fetchall()]
                self.notifier.poke()
                return ids
            except (InterfaceError, OperationalError):
                if attempt == TRIES:
                    raise
                await pool.check()
                await asyncio.sleep(WAIT_S * (0.95 + 0.1 * random.random()))  # noqa: S311
        raise AssertionError("unreachable")

    select_events = _fewer_tries(_library(PostgresApplicationRecorder.select_events))
    select_notifications = _fewer_tries(_library(PostgresApplicationRecorder.select_notifications))
    max_notification_id = _fewer_tries(_library(PostgresApplicationRecorder.max_notification_id))


def _columns(stored_events: Sequence[StoredEvent]) -> tuple[list[Any], ...]:
    """The insert function's four arrays."""
    return (
        [e.originator_id for e in stored_events],
        [e.originator_version for e in stored_events],
        [e.topic for e in stored_events],
        [e.state for e in stored_events],
    )


@contextmanager
def _store_errors() -> Iterator[None]:
    """psycopg's errors as the library's (what the application and the API handle)."""
    try:
        yield
    except psycopg.IntegrityError as error:
        raise IntegrityError(str(error)) from error
    except psycopg.OperationalError as error:
        raise OperationalError(str(error)) from error
    except psycopg.InterfaceError as error:
        raise InterfaceError(str(error)) from error
    except psycopg.Error as error:
        raise PersistenceError(str(error)) from error


class ReconciliationSQLiteRecorder(SQLiteApplicationRecorder):
    """On SQLite the library stores every application in one `stored_events` table; the
    settlement batches get a table of their own, as on PostgreSQL (`reconciliation_events`),
    so the order log never sees them."""

    def __init__(
        self, datastore: SQLiteDatastore, events_table_name: str = "reconciliation_events"
    ) -> None:
        super().__init__(datastore, events_table_name)
