"""The read side's database access: one small interface over PostgreSQL and SQLite.

SQL is written once with `%s` placeholders; the SQLite side rewrites them to `?`. Every
statement takes parameters; table names are internal constants, never input.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import anyio.to_thread
import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool, ConnectionPool

Row = tuple[Any, ...]
STORE_ERRORS = (psycopg.Error, sqlite3.Error)
"""What a failing read-side query raises, on either store."""
TRANSIENT_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, sqlite3.OperationalError)
"""Failures of the connection or the server (down, restarted, locked), not of the data: the
same statement may well succeed later."""


class Tx(ABC):
    """An open transaction (or a read snapshot)."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = (), *, binary: bool = False) -> list[Row]:
        """Run one statement; the rows it returns, if any. `binary` asks PostgreSQL for the
        rows in its binary format (the same Python values): for reads of many events, whose
        states the text format sends as hex, about a third less CPU on each side."""

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each parameter row."""

    def insert(self, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        """`head VALUES (row), (row)… tail` for every row: `head` is `INSERT INTO t (cols)`,
        `tail` an optional `ON CONFLICT …` clause. No two rows may share a conflict key."""
        if rows:
            marks = "(" + ",".join(["%s"] * len(rows[0])) + ")"
            self.executemany(f"{head} VALUES {marks} {tail}", rows)

    def append(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert `rows` into an append-only table (no conflict handling)."""
        names = ", ".join(columns)
        self.insert(f"INSERT INTO {table} ({names})", rows)

    def delete_in(self, table: str, column: str, values: Sequence[Any]) -> None:
        """Delete the rows whose `column` is one of `values`."""
        sql = f"DELETE FROM {table} WHERE {column} = %s"  # noqa: S608
        self.executemany(sql, [(value,) for value in values])

    @property
    @abstractmethod
    def rowcount(self) -> int:
        """Rows changed by the last statement."""

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Statements inside that fail are undone alone; the transaction goes on."""
        self._control("SAVEPOINT isolated")
        try:
            yield
        except BaseException:
            self._control("ROLLBACK TO SAVEPOINT isolated")
            self._control("RELEASE SAVEPOINT isolated")
            raise
        self._control("RELEASE SAVEPOINT isolated")

    def _control(self, sql: str) -> None:
        self.execute(sql)

    @abstractmethod
    def cancel(self) -> None:
        """Cancel the statement this transaction is running, from another thread (it then
        raises there and the transaction rolls back); nothing if none is running."""


class Database(ABC):
    """A connection source for read models, their positions and the event log."""

    dialect: str
    events_table: str
    connections: int = 1
    """How many transactions it can have open at once (its pool's size)."""

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A read-write transaction, committed on success and rolled back on error."""

    @abstractmethod
    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A consistent read-only snapshot."""

    def export_snapshot(self, tx: Tx) -> str | None:
        """An id other sessions can read `tx`'s snapshot under (`read_in`) while `tx` stays
        open; None where the store cannot share one (SQLite)."""
        return None

    @contextmanager
    def read_in(self, snapshot: str) -> Iterator[Tx]:
        """A read-only transaction that sees exactly the snapshot another one exported."""
        raise NotImplementedError(f"{self.dialect} cannot share a snapshot")
        yield  # pragma: no cover - a generator, for contextmanager

    @abstractmethod
    def one(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one read-only statement on its own (a statement is its own snapshot): the
        cheapest read, one round trip on PostgreSQL."""

    async def one_async(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """`one` for an event loop: on a worker thread, or natively once `open_async` ran."""
        return await anyio.to_thread.run_sync(self.one, sql, params)

    async def open_async(self) -> None:
        """Prepare `one_async` for the running event loop (nothing to do by default)."""
        return None

    async def close_async(self) -> None:
        """Undo `open_async`."""
        return None

    @abstractmethod
    def close(self) -> None: ...

    def in_list(self, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A `column <fragment>` for membership in `values`, and its parameters."""
        return "IN (" + ",".join(["%s"] * len(values)) + ")", list(values)

    def bucket(self, column: str, seconds: int) -> str:
        """SQL for the start of the `seconds`-long bucket holding a non-negative number."""
        return f"CAST({column} / {int(seconds)} AS INTEGER) * {int(seconds)}"  # truncates


class LoopPool:
    """An async connection pool for one event loop (a server process's), opened when the
    loop starts: `current()` is None on any other loop, or before `open`."""

    def __init__(self) -> None:
        self._pool: AsyncConnectionPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self, **options: Any) -> None:
        pool = AsyncConnectionPool(open=False, **options)
        await pool.open(wait=False)
        self._pool, self._loop = pool, asyncio.get_running_loop()

    async def close(self) -> None:
        pool, self._pool, self._loop = self._pool, None, None
        if pool is not None:
            await pool.close()

    def current(self) -> AsyncConnectionPool | None:
        return self._pool if self._loop is asyncio.get_running_loop() else None


class PostgresDatabase(Database):
    """psycopg 3 with its own small pool; `schema` becomes the search_path.

    Connections are not pinged before use (a round trip each). A query that fails on a
    broken connection makes the pool check its idle ones, so one failure clears every
    connection a server restart broke; `one` then tries again, once.
    """

    dialect = "postgres"
    events_table = "payments_events"

    def __init__(self, conninfo: str, schema: str = "", max_size: int = 4) -> None:
        options = f"-c search_path={schema}" if schema else None
        kwargs: dict[str, Any] = {"autocommit": True} | ({"options": options} if options else {})
        self.pool = ConnectionPool(
            conninfo, min_size=1, max_size=max_size, kwargs=kwargs, open=False, timeout=10.0
        )
        self.connections = max_size
        self.pool.open(wait=False)
        self._async_args: dict[str, Any] = {"conninfo": conninfo, "kwargs": kwargs}
        self._async = LoopPool()
        self._copy_types: CopyTypes = {}

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._checked(), self.pool.connection() as conn, conn.transaction():
            yield _PostgresTx(conn.cursor(), self._copy_types)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self._checked(), self.pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield _PostgresTx(conn.cursor(), self._copy_types)

    def export_snapshot(self, tx: Tx) -> str | None:
        return str(tx.execute("SELECT pg_export_snapshot()")[0][0])

    @contextmanager
    def read_in(self, snapshot: str) -> Iterator[Tx]:
        if not SNAPSHOT_ID.fullmatch(snapshot):  # a utility statement: no parameters
            raise ValueError("not a snapshot id")
        with self._checked(), self.pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            yield _PostgresTx(conn.cursor(), self._copy_types)

    def one(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._one(sql, params)
        except psycopg.OperationalError:
            self.pool.check()
            return self._one(sql, params)

    def _one(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with self.pool.connection() as conn:
            cursor = conn.execute(sql, params, prepare=True)
            return cursor.fetchall() if cursor.description else []

    async def open_async(self) -> None:
        """Open a pool for `one_async` in the running event loop (an ASGI app's startup)."""
        await self._async.open(**self._async_args, min_size=1, max_size=LOOP_READS)

    async def close_async(self) -> None:
        await self._async.close()

    async def one_async(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        pool = self._async.current()
        if pool is None:
            return await super().one_async(sql, params)
        try:
            return await self._one_async(pool, sql, params)
        except psycopg.OperationalError:
            await pool.check()
            return await self._one_async(pool, sql, params)

    @staticmethod
    async def _one_async(pool: AsyncConnectionPool, sql: str, params: Sequence[Any]) -> list[Row]:
        async with pool.connection() as conn:
            cursor = await conn.execute(sql, params, prepare=True)
            return await cursor.fetchall() if cursor.description else []

    @contextmanager
    def _checked(self) -> Iterator[None]:
        try:
            yield
        except psycopg.OperationalError:
            self.pool.check()
            raise

    def in_list(self, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """Text or UUIDs go as one array written out here, as PostgreSQL's array text:
        psycopg would dump a list element by element in Python, which took a tenth of an
        audit (seven lists of 500 ids per chunk)."""
        if not values:
            return "= ANY(%s)", [[]]
        if all(type(v) is str for v in values):
            return "= ANY(%s::text[])", [array_text(values)]
        if all(type(v) is UUID for v in values):
            return "= ANY(%s::uuid[])", ["{" + ",".join(map(str, values)) + "}"]
        return "= ANY(%s)", [list(values)]

    def bucket(self, column: str, seconds: int) -> str:
        return f"FLOOR({column} / {int(seconds)}) * {int(seconds)}"  # a cast would round

    def close(self) -> None:
        self.pool.close()


CopyTypes = dict[tuple[str, tuple[str, ...]], list[int]]
"""(table, columns) -> the columns' type oids, for COPY in the binary format."""


class _PostgresTx(Tx):
    def __init__(self, cursor: psycopg.Cursor[Row], copy_types: CopyTypes) -> None:
        self.cursor = cursor
        self._copy_types = copy_types

    def execute(self, sql: str, params: Sequence[Any] = (), *, binary: bool = False) -> list[Row]:
        self.cursor.execute(sql, params, prepare=True, binary=binary)
        return self.cursor.fetchall() if self.cursor.description else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cursor.executemany(sql, rows)

    def _control(self, sql: str) -> None:
        self.cursor.execute(sql, prepare=False)

    def cancel(self) -> None:
        self.cursor.connection.cancel_safe(timeout=CANCEL_TIMEOUT_S)

    def insert(self, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        # One multi-row statement per chunk, with PostgreSQL's own $n placeholders (psycopg
        # parses no %s): a third of executemany's client CPU, which sends and reads per row.
        if not rows:
            return
        width = len(rows[0])
        step = max(1, MAX_PARAMS // width)
        raw = psycopg.RawCursor(self.cursor.connection)
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            params = [value for row in chunk for value in row]
            raw.execute(f"{head} VALUES {_placeholders(width, len(chunk))} {tail}", params)

    def append(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """COPY: half the server time and a third of the client CPU of a multi-row INSERT.
        In the binary format, with the columns' types as the table has them (read once, then
        again after a COPY that failed, which a table made again with other types causes):
        neither side escapes or parses text, which took a catch-up 7% longer."""
        if not rows:
            return
        names = ", ".join(columns)
        key = (table, tuple(columns))
        types = self._copy_types.get(key)
        if types is None:
            self.cursor.execute(f"SELECT {names} FROM {table} LIMIT 0")  # noqa: S608
            types = [column.type_code for column in self.cursor.description or ()]
            self._copy_types[key] = types
        try:
            with self.cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        except BaseException:
            self._copy_types.pop(key, None)
            raise

    def delete_in(self, table: str, column: str, values: Sequence[Any]) -> None:
        if values:
            self.cursor.execute(
                f"DELETE FROM {table} WHERE {column} = ANY(%s)",  # noqa: S608
                (list(values),),
                prepare=True,
            )

    @property
    def rowcount(self) -> int:
        return self.cursor.rowcount


SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+-[0-9]+")
"""What pg_export_snapshot() returns."""
MAX_PARAMS = 20_000
"""Parameters per multi-row statement (PostgreSQL allows 65535)."""
LOOP_READS = 4
"""Connections for `one_async` on a server process's event loop."""
CANCEL_TIMEOUT_S = 5.0
"""How long a cancel request may take to reach the server before it is given up."""


@functools.lru_cache(maxsize=256)
def _placeholders(width: int, count: int) -> str:
    """`($1,$2),($3,$4)` for `count` rows of `width` values."""
    return ",".join(
        "(" + ",".join(f"${n * width + i}" for i in range(1, width + 1)) + ")" for n in range(count)
    )


class SQLiteDatabase(Database):
    """One connection per thread, WAL journal, writers serialised with BEGIN IMMEDIATE."""

    dialect = "sqlite"
    events_table = "stored_events"

    def __init__(self, path: str, busy_timeout_s: float = 10.0) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._begin("BEGIN IMMEDIATE") as tx:
            yield tx

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self._begin("BEGIN") as tx:
            yield tx

    def one(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self.read() as tx:
            return tx.execute(sql, params)

    @contextmanager
    def _begin(self, statement: str) -> Iterator[Tx]:
        conn = self._connection()
        conn.execute(statement)
        try:
            yield _SQLiteTx(conn.cursor())
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            # A COMMIT that fails (a deferred constraint, an I/O error) leaves the transaction
            # open on this thread's connection: every later BEGIN on it would fail, holding
            # the write lock from every other writer.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


_CONVERTED: dict[str, str] = {}
"""SQL with %s placeholders -> the same with ?, for SQLite."""


class _SQLiteTx(Tx):
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.cursor = cursor

    @staticmethod
    def _sql(sql: str) -> str:
        converted = _CONVERTED.get(sql)
        if converted is None:
            converted = _CONVERTED[sql] = sql.replace("%s", "?")
        return converted

    def execute(self, sql: str, params: Sequence[Any] = (), *, binary: bool = False) -> list[Row]:
        self.cursor.execute(self._sql(sql), tuple(params))
        return self.cursor.fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cursor.executemany(self._sql(sql), rows)

    @property
    def rowcount(self) -> int:
        return self.cursor.rowcount

    def cancel(self) -> None:
        self.cursor.connection.interrupt()


def array_text(values: Sequence[str]) -> str:
    """PostgreSQL's text form of a one-dimensional array of these strings: each element
    quoted, with its quotes and backslashes escaped (no string reaching SQL holds a NUL:
    domain.inputs refuses them at every boundary)."""
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + '","'.join(quoted) + '"}' if values else "{}"


def open_database(env: dict[str, str], pool_size: int = 4) -> Database:
    """The read side's database for the event store's settings (see bootstrap.settings)."""
    if env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
        return SQLiteDatabase(env["SQLITE_DBNAME"])
    return PostgresDatabase(postgres_conninfo(env), env.get("POSTGRES_SCHEMA", ""), pool_size)


def postgres_conninfo(env: dict[str, str]) -> str:
    """A libpq connection string for the event store's PostgreSQL settings."""
    return make_conninfo(
        dbname=env["POSTGRES_DBNAME"],
        host=env["POSTGRES_HOST"],
        port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"],
        connect_timeout=env.get("POSTGRES_CONNECT_TIMEOUT", "5"),
    )
