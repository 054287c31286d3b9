"""`payments migrate`: create the tables once, under a lock, so processes never race to do it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg

from adapters import revocations
from adapters.db import open_database, postgres_conninfo
from bootstrap.read_side import open_app
from bootstrap.settings import Settings
from projections.catalog import all_projections, create_tables

MIGRATION_LOCK = 0x70617931  # an arbitrary, fixed advisory-lock id ("pay1")


def migrate(settings: Settings) -> None:
    """Create the event store's and the read models' tables if missing (idempotent)."""
    env = settings.event_store_env(create_tables=True)
    config = settings.payments_config()
    with _exclusive(env):
        open_app(settings, create_tables=True).close()
        db = open_database(env, pool_size=1)
        try:
            create_tables(db, all_projections(config.timing))
            with db.transaction() as tx:
                revocations.create(tx)
        finally:
            db.close()


@contextlib.contextmanager
def _exclusive(env: dict[str, str]) -> Iterator[None]:
    """On PostgreSQL, hold an advisory lock so concurrent migrations run one at a time."""
    if env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        yield
        return
    with psycopg.connect(postgres_conninfo(env), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
