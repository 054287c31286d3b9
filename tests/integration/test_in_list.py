"""`column IN` a list, on both stores: every value matches itself and nothing else, whatever
characters it holds (PostgreSQL's array text is written by hand: adapters/db.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from adapters.db import Database

TRICKY = [
    "plain",
    "",
    'with "quotes"',
    "back\\slash",
    'both \\" at once\\',
    "comma, brace} {and}",
    "NULL",
    " spaced ",
    "ünïcødé ✓",
    "it's",
    "{}",
]
OTHERS = ["plain ", "Plain", "null", "back\\\\slash", "quotes"]


def matching(db: Database, table: str, column: str, values: list[Any]) -> list[Any]:
    """The rows of `table` whose `column` is one of `values`."""
    fragment, params = db.in_list(values)
    query = f"SELECT {column} FROM {table} WHERE {column} {fragment}"  # noqa: S608 - our names
    with db.read() as tx:
        return [r[0] for r in tx.execute(query, params)]


def test_text_values_match_exactly_themselves(db: Database) -> None:
    with db.transaction() as tx:
        tx.execute("CREATE TABLE in_list_probe (v TEXT)")
        tx.executemany("INSERT INTO in_list_probe VALUES (%s)", [(v,) for v in TRICKY + OTHERS])
    assert sorted(matching(db, "in_list_probe", "v", TRICKY)) == sorted(TRICKY)
    assert matching(db, "in_list_probe", "v", []) == []
    db.close()


def test_uuids_match_the_event_store_s_ids(db: Database) -> None:
    """As the event log asks: UUIDs on PostgreSQL, their hex on SQLite."""
    wanted, other = [uuid4(), uuid4(), UUID(int=0)], uuid4()
    sqlite = db.dialect == "sqlite"

    def raw(ids: list[UUID]) -> list[Any]:
        return [u.hex for u in ids] if sqlite else list(ids)

    with db.transaction() as tx:
        tx.execute(f"CREATE TABLE in_list_ids (id {'TEXT' if sqlite else 'UUID'})")
        tx.executemany("INSERT INTO in_list_ids VALUES (%s)", [(v,) for v in raw([*wanted, other])])
    found = matching(db, "in_list_ids", "id", raw(wanted))
    assert sorted(UUID(str(f)) for f in found) == sorted(wanted)
    assert matching(db, "in_list_ids", "id", raw([])) == []
    db.close()
