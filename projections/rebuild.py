"""Rebuild read models from scratch while the live ones keep serving.

The rebuild fills a copy of each projection's tables (suffix `__rebuild`) from zero, order
by order and with several processes on a large PostgreSQL store (projections/bulk.py), lets
the runner take the copies from there to the log's end, then, in one transaction that holds
the live projections' positions, catches up the last events, swaps the copies in for the
live tables and takes over the positions. Readers see the old tables (still kept current by
the live runner) until that commit, then the new. Rebuilt together, read models share one
decode and replay of each order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from adapters.db import Database, Tx
from projections import bulk, positions, quarantine
from projections.base import Projection
from projections.bulk import Builders
from projections.log import EventLog
from projections.runner import ProjectionRunner

SUFFIX = "__rebuild"


def rebuild(
    db: Database,
    event_log: EventLog,
    live: Projection,
    copy: Projection,
    progress: Callable[[int], None] | None = None,
    helpers: Builders | None = None,
) -> int:
    """Rebuild `live` through its `copy` (same class, suffix SUFFIX); returns events applied."""
    return rebuild_all(db, event_log, [(live, copy)], progress, helpers)


def rebuild_all(
    db: Database,
    event_log: EventLog,
    pairs: Sequence[tuple[Projection, Projection]],
    progress: Callable[[int], None] | None = None,
    helpers: Builders | None = None,
) -> int:
    """Rebuild each (live, copy) pair in one pass over the store; returns events applied."""
    copies = [copy for _, copy in pairs]
    for copy in copies:
        reset_copy(db, copy)
    applied, _ = bulk.build(db, event_log, copies, helpers, progress)
    runner = ProjectionRunner(db, event_log, copies)
    applied += runner.catch_up(progress)
    with db.transaction() as tx:
        positions.read(db, tx, [live.position_name for live, _ in pairs], lock=True)
        while batch := runner.run_batch(tx):
            applied += batch
        for live, copy in pairs:
            _swap(db, tx, live, copy)
    return applied


def reset_copy(db: Database, copy: Projection) -> None:
    """Empty tables for `copy` at position 0, without the indexes bulk.build adds at its end."""
    with db.transaction() as tx:
        for table in copy.tables:
            tx.execute(f"DROP TABLE IF EXISTS {copy.t(table)}")
        for statement in copy.table_statements():
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
