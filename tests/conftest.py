"""Fixtures shared by every layer: PostgreSQL databases, the PSP simulator, settings.

PostgreSQL comes from PAYMENTS_TEST_POSTGRES_URL (default: the local server). Each test
session creates its own database and drops it at the end; each test gets its own schema,
so runs never collide. When the server cannot be reached the PostgreSQL tests fail under
CI (CI=1, as .ci/run sets) and are skipped, loudly, elsewhere.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from hypothesis import settings
from psycopg import sql

from api.threaded_server import ThreadedServer
from chaos.localstripe import LocalStripe
from chaos.localstripe import start as start_localstripe
from chaos.processes import free_port
from psp.simulator import create_simulator

# Timing is not what these properties are about, and CI machines are shared: no deadlines.
settings.register_profile("payments", deadline=None)
settings.load_profile("payments")

ADMIN_URL = os.environ.get(
    "PAYMENTS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _unreachable(reason: str) -> None:
    message = f"PostgreSQL is needed at {ADMIN_URL} ({reason}); set PAYMENTS_TEST_POSTGRES_URL"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database for this test session (or xdist worker); its URL."""
    name = f"payments_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        _unreachable(str(error).splitlines()[0])
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """A database URL whose schema belongs to this test alone."""
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield f"{postgres_database}?schema={schema}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=STORES)
def database_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """Each test that uses this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/payments.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


def new_store_url(request: pytest.FixtureRequest, kind: str, directory: os.PathLike[str]) -> str:
    """A fresh store for a longer-lived fixture: a SQLite file, or a new PostgreSQL schema
    (dropped with the session's database)."""
    if kind == "sqlite":
        return f"sqlite:///{directory}/payments.db"
    base: str = request.getfixturevalue("postgres_database")
    schema = f"s_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return f"{base}?schema={schema}"


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[ThreadedServer]:
    """The PSP simulator over real HTTP on a loopback port (webhooks off)."""
    server = ThreadedServer(create_simulator()).start()
    yield server
    server.stop()


@pytest.fixture
def simulator(simulator_server: ThreadedServer) -> Iterator[httpx.Client]:
    """A client for the simulator's control API, reset before each test."""
    with httpx.Client(base_url=simulator_server.url, timeout=10) as client:
        client.post("/_control/reset").raise_for_status()
        yield client


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripe]:
    """localstripe (a fake Stripe by others, from the dev lock) as a real process on a
    loopback port, for the whole session. It never skips: without it the tests fail."""
    server = start_localstripe(free_port())
    yield server
    server.stop()


@pytest.fixture
def many_connections(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """For a test that holds tens of PostgreSQL connections at once (the bench's smoke run:
    up to 53; a chaos storm: up to 49): one such test at a time across the suite's workers,
    so that together they stay under the server's default limit of 100. Two at once went
    past it, and the storm's processes could not connect."""
    shared = tmp_path_factory.getbasetemp().parent  # the run's, shared by its workers
    with open(shared / "many-connections.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
