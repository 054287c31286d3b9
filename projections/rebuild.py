"""Rebuild a read model from scratch while the live one keeps serving.

The rebuild fills a copy of the projection's tables (suffix `__rebuild`) from position 0,
then, in one transaction that holds the live projection's position, catches up the last
events, swaps the copy in for the live tables and takes over the position. Readers see
the old tables (still kept current by the live runner) until that commit, then the new.
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.db import Database, Tx
from projections import positions, quarantine
from projections.base import Projection
from projections.log import EventLog
from projections.runner import ProjectionRunner

SUFFIX = "__rebuild"


def rebuild(
    db: Database,
    event_log: EventLog,
    live: Projection,
    copy: Projection,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Rebuild `live` through its `copy` (same class, suffix SUFFIX); returns events applied."""
    _reset_copy(db, copy)
    runner = ProjectionRunner(db, event_log, [copy])
    applied = runner.catch_up(progress)
    with db.transaction() as tx:
        positions.read(db, tx, [live.position_name], lock=True)
        while batch := runner.run_batch(tx):
            applied += batch
        _swap(db, tx, live, copy)
    return applied


def _reset_copy(db: Database, copy: Projection) -> None:
    with db.transaction() as tx:
        for table in copy.tables:
            tx.execute(f"DROP TABLE IF EXISTS {copy.t(table)}")
        for statement in copy.create_statements():
            tx.execute(statement)
        positions.restart(tx, copy.position_name)
        quarantine.clear(tx, copy.position_name)


def _swap(db: Database, tx: Tx, live: Projection, copy: Projection) -> None:
    for table in live.tables:
        tx.execute(f"DROP TABLE {live.t(table)}")
        tx.execute(f"ALTER TABLE {copy.t(table)} RENAME TO {live.t(table)}")
    _rename_indexes(db, tx, live, copy)
    positions.take_over(tx, live.position_name, copy.position_name)
    quarantine.take_over(tx, live.position_name, copy.position_name)


def _rename_indexes(db: Database, tx: Tx, live: Projection, copy: Projection) -> None:
    """Indexes keep their names when their table is renamed: give them the live names."""
    renames = {copy.t(table) + "_": live.t(table) + "_" for table in copy.tables}
    if db.dialect == "sqlite":
        rows = tx.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        for (name,) in rows:
            if any(name.startswith(prefix) for prefix in renames):
                tx.execute(f"DROP INDEX {name}")
        for statement in live.create_statements():
            tx.execute(statement)  # recreates them under their live names
        return
    rows = tx.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
    for (name,) in rows:
        for prefix, replacement in renames.items():
            if name.startswith(prefix):
                tx.execute(f"ALTER INDEX {name} RENAME TO {replacement + name[len(prefix) :]}")
