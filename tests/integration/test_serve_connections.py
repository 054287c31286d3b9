"""`serve` warns at startup when it may need more PostgreSQL connections than the server
allows (its default, 100, is passed from 4 cores up with the default pools)."""

from __future__ import annotations

import logging

import pytest

from bootstrap.settings import Settings
from cli.main import _check_connections, connections_needed

pytestmark = pytest.mark.postgres


def test_the_connections_serve_may_need_grow_with_its_processes_and_pools() -> None:
    defaults = Settings()
    assert connections_needed(defaults, 1) == 10 + 5 + 4 + 8
    assert connections_needed(defaults, 2) == 2 * 27 + 10 + 5 + 1
    assert connections_needed(defaults, 4) > 100  # past PostgreSQL's default limit
    assert connections_needed(Settings(db_pool_size=4), 4) < 100


def test_serve_warns_when_the_server_allows_fewer(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="payments")
    _check_connections(Settings(database_url=postgres_url), 1)
    assert not [r for r in caplog.records if "max_connections" in r.getMessage()]
    _check_connections(Settings(database_url=postgres_url, db_pool_size=200), 2)
    [warning] = [r for r in caplog.records if "max_connections" in r.getMessage()]
    assert "up to 925 PostgreSQL connections (2 HTTP processes" in warning.getMessage()
