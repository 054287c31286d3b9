"""Wake a projection runner in another process when events are saved (PostgreSQL NOTIFY).

The event store's recorder sends one NOTIFY on the channel after each burst of inserts
(`Notifier`); without it (SQLite, or a dropped connection) the runner still polls, only a
little later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

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


NOTIFY_INTERVAL_S = 0.02
"""At most one NOTIFY per this long per process: a runner gathers events for longer than
that anyway (projections.runner.GATHER_S), and one per insert cost a query each."""


class Notifier:
    """Sends a notification after inserts, from a thread of its own, at most one per
    NOTIFY_INTERVAL_S: however many inserts poke it meanwhile, one more follows."""

    def __init__(self, send: Callable[[], None]) -> None:
        self._send = send
        self._pending = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        self._pending.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, daemon=True, name="notify")
                    self._thread.start()

    def _run(self) -> None:
        while True:
            self._pending.wait()
            self._pending.clear()
            try:
                self._send()
            except Exception as error:  # the pool closed, or the server is away: runners poll
                log.debug("NOTIFY not sent: %s", type(error).__name__)
                time.sleep(0.5)
            time.sleep(NOTIFY_INTERVAL_S)  # what is poked meanwhile goes in the next one
