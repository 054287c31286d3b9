"""A SQLite COMMIT that fails leaves nothing open: the next transaction on the same
thread's connection begins, and other writers are not locked out (adapters/db.py)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from adapters.db import SQLiteDatabase


def test_a_failed_commit_is_rolled_back_and_the_connection_stays_usable(tmp_path: Path) -> None:
    db = SQLiteDatabase(str(tmp_path / "commit.db"), busy_timeout_s=1.0)
    try:
        with db.transaction() as tx:
            tx.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
            tx.execute(
                "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) "
                "DEFERRABLE INITIALLY DEFERRED)"
            )
        db._connection().execute("PRAGMA foreign_keys = ON")  # checked at COMMIT
        with pytest.raises(sqlite3.IntegrityError), db.transaction() as tx:
            tx.execute("INSERT INTO child (parent_id) VALUES (%s)", (7,))
        with db.transaction() as tx:  # this thread's connection: a new transaction
            tx.execute("INSERT INTO parent (id) VALUES (%s)", (1,))
        other: list[object] = []

        def write() -> None:  # another thread's connection: not locked out
            with db.transaction() as tx:
                tx.execute("INSERT INTO parent (id) VALUES (%s)", (2,))
            other.append("written")

        thread = threading.Thread(target=write)
        thread.start()
        thread.join(timeout=10)
        assert other == ["written"]
        assert db.one("SELECT COUNT(*) FROM child") == [(0,)]
        assert db.one("SELECT id FROM parent ORDER BY id") == [(1,), (2,)]
    finally:
        db.close()
