"""`projection_positions`: how far each read model has applied the log. The one owner of its SQL.

Each projection has a row (a rebuild's copy has its own, with a suffix); the runner advances
it in the same transaction as the read model's changes, which is what makes it exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.db import Database, Tx

CREATE = (
    "CREATE TABLE IF NOT EXISTS projection_positions "
    "(name TEXT PRIMARY KEY, position BIGINT NOT NULL)"
)


def create(tx: Tx, names: Sequence[str]) -> None:
    """Create the table and start each named projection at 0 (idempotent)."""
    tx.execute(CREATE)
    tx.executemany(
        "INSERT INTO projection_positions (name, position) VALUES (%s, 0) "
        "ON CONFLICT (name) DO NOTHING",
        [(name,) for name in names],
    )


def read(db: Database, tx: Tx, names: Sequence[str], *, lock: bool = False) -> dict[str, int]:
    """The positions of the named projections that have a row (locked on PostgreSQL with
    `lock`, so two runners never apply one batch)."""
    fragment, params = db.in_list(list(names))
    suffix = " FOR UPDATE" if lock and db.dialect == "postgres" else ""
    sql = f"SELECT name, position FROM projection_positions WHERE name {fragment}{suffix}"  # noqa: S608
    return {name: int(position) for name, position in tx.execute(sql, params)}


def of(db: Database, name: str) -> int:
    """One projection's position, in a statement of its own (0 when it has no row)."""
    rows = db.one("SELECT position FROM projection_positions WHERE name = %s", (name,))
    return int(rows[0][0]) if rows else 0


def advance(tx: Tx, name: str, position: int) -> None:
    tx.execute("UPDATE projection_positions SET position = %s WHERE name = %s", (position, name))


def advance_all(db: Database, tx: Tx, names: Sequence[str], position: int) -> None:
    """Move every named projection to `position`, in one statement."""
    fragment, params = db.in_list(list(names))
    sql = f"UPDATE projection_positions SET position = %s WHERE name {fragment}"  # noqa: S608
    tx.execute(sql, [position, *params])


def restart(tx: Tx, name: str) -> None:
    """Start a projection (a rebuild's copy) again from 0."""
    forget(tx, name)
    tx.execute("INSERT INTO projection_positions (name, position) VALUES (%s, 0)", (name,))


def forget(tx: Tx, name: str) -> None:
    tx.execute("DELETE FROM projection_positions WHERE name = %s", (name,))


def take_over(tx: Tx, live: str, copy: str) -> None:
    """The live projection takes the copy's position; the copy's row goes."""
    tx.execute(
        "UPDATE projection_positions SET position = "
        "(SELECT position FROM projection_positions WHERE name = %s) WHERE name = %s",
        (copy, live),
    )
    forget(tx, copy)


def lowest_sql(db: Database, names: Sequence[str]) -> tuple[str, list[object]]:
    """SQL and parameters for the lowest position among `names`."""
    fragment, params = db.in_list(list(names))
    return f"SELECT MIN(position) FROM projection_positions WHERE name {fragment}", params  # noqa: S608
