"""Integration fixtures: a migrated store (SQLite or PostgreSQL) and the real simulator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from adapters.db import Database, open_database
from api.main import create_app
from api.threaded_server import ThreadedServer
from bootstrap.composition import Container, build
from bootstrap.migrate import migrate
from bootstrap.settings import Settings

FAST: dict[str, Any] = {
    "psp_timeout_s": 0.5,
    "retry_base_s": 0.05,
    "retry_max_s": 0.2,
    "max_attempts": 3,
    "worker_interval_s": 0.05,
    "session_ttl_s": 60,
}


@pytest.fixture
def db(database_url: str) -> Database:
    """The read side's database on a fresh, migrated store (the test closes it)."""
    settings = Settings(database_url=database_url)
    migrate(settings)
    return open_database(settings.event_store_env())


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, **FAST)


@pytest.fixture
def container(
    settings: Settings, simulator_server: ThreadedServer, simulator: Any
) -> Iterator[Container]:
    """The application on a fresh, migrated store, talking to the simulator over HTTP."""
    migrate(settings)
    built = build(settings, psp_url=simulator_server.url)
    yield built
    built.close()


@contextmanager
def serving(settings: Settings, psp_url: str) -> Iterator[tuple[str, Container]]:
    """The API in this process on a freshly migrated store: its URL and its container."""
    migrate(settings)
    container = build(settings, psp_url=psp_url)
    server = ThreadedServer(create_app(container)).start()
    try:
        yield server.url, container
    finally:
        server.stop()
        container.close()
