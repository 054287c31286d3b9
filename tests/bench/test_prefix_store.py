"""The bench's prefix store: the first events of a run's log in a database of their own,
with their read models built, and the helpers' fork server already running when the
catch-up and audit rounds start (as the commands start it first thing)."""

from __future__ import annotations

from multiprocessing import forkserver
from typing import Any

import psycopg
import pytest

from bench import ours
from bench.stack import database_url, drop_database, new_database
from bootstrap.settings import Settings
from tests.bench.stores import with_checkouts
from tests.conftest import ADMIN_URL

pytestmark = pytest.mark.postgres


def _count(url: str, sql: str, *params: str) -> int:
    with psycopg.connect(url) as conn:
        (n,) = conn.execute(sql, params).fetchone() or (0,)
    return int(n)


def test_the_prefix_store_holds_the_first_events_built_with_the_fork_server_running(
    simulator_server: Any,
    simulator: Any,  # reset: no faults left by an earlier test
) -> None:
    source_name = new_database(ADMIN_URL, "_source")
    source = Settings(database_url=database_url(ADMIN_URL, source_name))
    try:
        with_checkouts(source, simulator_server.url, 4)
        server: Any = forkserver._forkserver  # the process's (private in the standard library)
        server._stop()  # one an earlier test started: gone
        with ours.prefix_store(source, ADMIN_URL, 7) as prefix:
            running = server._forkserver_pid is not None  # started before the rounds
            url = prefix.database_url
            assert _count(url, "SELECT count(*) FROM payments_events") == 7
            # the read models are built: every order the seven events touch has its row
            assert _count(url, "SELECT count(*) FROM order_view") == _count(
                url, "SELECT count(DISTINCT originator_id) FROM payments_events"
            )
        assert running
        name = url.rsplit("/", 1)[1]
        assert _count(ADMIN_URL, "SELECT count(*) FROM pg_database WHERE datname = %s", name) == 0
    finally:
        drop_database(ADMIN_URL, source_name)
