"""Rows read in PostgreSQL's binary format (`Tx.execute(..., binary=True)`, as the event log
reads events) are the same Python values as rows read as text, on both stores."""

from __future__ import annotations

from uuid import UUID

from adapters.db import Database

ROWS = [
    (2**63 - 1, UUID(int=0), "PaymentOrder.Placed", b'{"a":1}'),
    (1, UUID(int=2**128 - 1), "ünïcødé ✓ \\ \" '", bytes(range(256))),
    (0, UUID("12345678-1234-5678-1234-567812345678"), "", b""),
    (-5, UUID(int=7), None, None),
]


def test_binary_rows_equal_text_rows(db: Database) -> None:
    sqlite = db.dialect == "sqlite"
    with db.transaction() as tx:
        tx.execute(
            "CREATE TABLE binary_probe (n BIGINT, id {}, topic TEXT, state {})".format(
                *(("TEXT", "BLOB") if sqlite else ("UUID", "BYTEA"))
            )
        )
        tx.executemany(
            "INSERT INTO binary_probe VALUES (%s, %s, %s, %s)",
            [(n, i.hex if sqlite else i, t, s) for n, i, t, s in ROWS],
        )
    query = "SELECT n, id, topic, state FROM binary_probe ORDER BY n"
    with db.read() as tx:
        as_text, as_binary = tx.execute(query), tx.execute(query, binary=True)
    assert [tuple(r) for r in as_binary] == [tuple(r) for r in as_text]
    if not sqlite:
        expected = sorted(ROWS, key=lambda r: r[0])
        assert [tuple(r) for r in as_binary] == expected
        assert all(type(r[0]) is int and type(r[1]) is UUID for r in as_binary)
    db.close()
