"""The event store's PostgreSQL recorder: one round trip per insert, failing fast.

**One round trip.** The library's default insert sends `LOCK TABLE … IN EXCLUSIVE MODE`,
`NOTIFY` and the `INSERT` through a pipeline, waits for the ids, then sends `COMMIT`: the
table lock is held across two round trips and whatever the Python process does between
them (under load, waiting for the GIL). Its "db functions" mode is one round trip but takes
no lock, so ids could commit out of order and a reader following `notification_id` could
skip an event (docs/design.md, section 8). Ours is a PL/pgSQL function that takes the same
lock, notifies and inserts, called on an autocommit connection: lock, insert and commit
happen inside the server, and the lock is released at commit as before.

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

TRIES = 3
WAIT_S = 0.2
INSERT_FUNCTION = "payments_insert_events"


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
        names = {
            "function": Identifier(INSERT_FUNCTION + "_" + datastore.originator_id_type),
            "schema": Identifier(datastore.schema),
            "table": Identifier(self.events_table_name),
            "id_type": Identifier(datastore.originator_id_type),
            "channel": Identifier(self.channel_name),
        }
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}("
                "ids {id_type}[], versions bigint[], topics text[], states bytea[]) "
                "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ BEGIN "
                "SET LOCAL lock_timeout = '{timeout}s'; "
                "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
                "NOTIFY {channel}; "
                "RETURN QUERY INSERT INTO {schema}.{table} "
                "(originator_id, originator_version, topic, state) "
                "SELECT * FROM unnest(ids, versions, topics, states) "
                "RETURNING notification_id; "
                "END; $BODY$"
            ).format(timeout=datastore.lock_timeout, **names)
        )
        # Four plain arrays, sent in binary: half the client CPU of an array of composites.
        self.insert_statement = SQL(
            "SELECT id FROM {schema}.{function}(%b, %b, %b, %b) AS id"
        ).format(**names)

    @_fewer_tries
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        columns = (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
        )
        with self.datastore.get_connection() as conn, conn.cursor(binary=True) as cursor:
            cursor.execute(self.insert_statement, columns, prepare=True)
            return [row["id"] for row in cursor.fetchall()]

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
        columns = (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
        )
        for attempt in range(1, TRIES + 1):
            try:
                with _store_errors():
                    async with pool.connection() as conn, conn.cursor(binary=True) as cursor:
                        await cursor.execute(self.insert_statement, columns, prepare=True)
                        return [row[0] for row in await cursor.fetchall()]
            except (InterfaceError, OperationalError):
                if attempt == TRIES:
                    raise
                await pool.check()
                await asyncio.sleep(WAIT_S * (0.95 + 0.1 * random.random()))  # noqa: S311
        raise AssertionError("unreachable")

    select_events = _fewer_tries(_library(PostgresApplicationRecorder.select_events))
    select_notifications = _fewer_tries(_library(PostgresApplicationRecorder.select_notifications))
    max_notification_id = _fewer_tries(_library(PostgresApplicationRecorder.max_notification_id))


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
