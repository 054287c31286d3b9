"""Wake a projection runner in another process when events are saved (PostgreSQL NOTIFY).

The event store sends NOTIFY on its table's channel with every insert; without it (SQLite,
or a dropped connection) the runner still polls, only a little later.
"""

from __future__ import annotations

import logging
import threading

import psycopg

log = logging.getLogger("payments.projections")
CHANNEL = "payments_events"


def listen(conninfo: str, wakeup: threading.Event, stop: threading.Event) -> threading.Thread:
    """Start a daemon thread that sets `wakeup` on every notification until `stop`."""
    thread = threading.Thread(target=_loop, args=(conninfo, wakeup, stop), daemon=True)
    thread.start()
    return thread


def _loop(conninfo: str, wakeup: threading.Event, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                while not stop.is_set():
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        wakeup.set()
        except psycopg.Error as error:
            log.warning(
                "LISTEN connection lost (%s); polling until it is back", type(error).__name__
            )
            stop.wait(1.0)
