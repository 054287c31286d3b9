"""`revoked_sessions`: dashboard sessions ended before their expiry (sign-out). The one owner
of the table's SQL.

A session cookie is signed, so it stays valid until it expires unless the server remembers
that it was ended. A signed-out cookie's MAC is kept here until the cookie would have expired
anyway; every dashboard request checks it (one primary-key lookup).
"""

from __future__ import annotations

from adapters.db import Database, Tx

CREATE = (
    "CREATE TABLE IF NOT EXISTS revoked_sessions "
    "(mac TEXT PRIMARY KEY, expires_at DOUBLE PRECISION NOT NULL)"
)


def create(tx: Tx) -> None:
    tx.execute(CREATE)


def revoke(db: Database, mac: str, expires_at: float, now: float) -> None:
    """End a session for good; forget sessions that have expired by now."""
    with db.transaction() as tx:
        tx.execute("DELETE FROM revoked_sessions WHERE expires_at < %s", (now,))
        tx.execute(
            "INSERT INTO revoked_sessions (mac, expires_at) VALUES (%s, %s) "
            "ON CONFLICT (mac) DO NOTHING",
            (mac, expires_at),
        )


def is_revoked(db: Database, mac: str) -> bool:
    return bool(db.one("SELECT 1 FROM revoked_sessions WHERE mac = %s", (mac,)))
