"""Rows appended (`Tx.append`: COPY in PostgreSQL's binary format, as the ledger and every
build from zero write them) read back as the same values as rows inserted with
parameters, on both stores; and a table made again with other column types is written
by its new types once a COPY into it has failed."""

from __future__ import annotations

import pytest

from adapters.db import Database, open_database
from bootstrap.migrate import migrate
from bootstrap.settings import Settings

COLUMNS = ("n", "small", "at", "text")
ROWS = [
    (2**63 - 1, 2**31 - 1, 1733600000.123456, "plain"),
    (-(2**63), -(2**31), -0.5, "tab\tnew\nline\r back\\slash \\N \"quoted\" 'it''s'"),
    (0, 0, 0.0, ""),
    (7, 1, 3, "ünïcødé ✓ 💳"),  # an int where the column holds doubles
    (8, None, None, None),
    (9, 2, 1e300, "\\."),
]
DDL = "CREATE TABLE {} (n BIGINT PRIMARY KEY, small INTEGER, at DOUBLE PRECISION, text TEXT)"


def test_appended_rows_equal_inserted_rows(db: Database) -> None:
    with db.transaction() as tx:
        for table in ("appended", "inserted"):
            tx.execute(DDL.format(table))
        tx.append("appended", COLUMNS, ROWS)
        tx.insert(f"INSERT INTO inserted ({', '.join(COLUMNS)})", ROWS)
        tx.append("appended", COLUMNS, [])  # nothing to write
    with db.read() as tx:
        appended = [tuple(r) for r in tx.execute("SELECT * FROM appended ORDER BY n")]
        inserted = [tuple(r) for r in tx.execute("SELECT * FROM inserted ORDER BY n")]
    assert appended == inserted
    assert appended == sorted(ROWS)
    assert [type(r[2]) for r in appended if r[2] is not None] == [float] * 5
    db.close()


def test_a_table_made_again_with_other_types_is_written_by_them(postgres_url: str) -> None:
    """PostgreSQL only: SQLite appends with INSERT and has no column types to remember."""
    settings = Settings(database_url=postgres_url)
    migrate(settings)
    db = open_database(settings.event_store_env())
    with db.transaction() as tx:
        tx.execute("CREATE TABLE remade (n BIGINT, label TEXT)")
        tx.append("remade", ("n", "label"), [(1, "one")])
    with db.transaction() as tx:
        tx.execute("DROP TABLE remade")
        tx.execute("CREATE TABLE remade (n INTEGER, label TEXT)")  # int4: other bytes
    with db.transaction() as tx:
        with pytest.raises(Exception, match="binary"), tx.savepoint():
            tx.append("remade", ("n", "label"), [(2, "two")])  # by the remembered BIGINT
        tx.append("remade", ("n", "label"), [(2, "two")])  # read again: INTEGER
    with db.read() as tx:
        assert [tuple(r) for r in tx.execute("SELECT n, label FROM remade")] == [(2, "two")]
    db.close()
