"""The loop every background worker runs: a pass, then rest when there was nothing to do."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from eventsourcing.persistence import PersistenceError

from adapters.db import STORE_ERRORS


def run_until_stopped(
    stop: threading.Event,
    one_pass: Callable[[], int],
    interval_s: float,
    log: logging.Logger,
    wakeup: threading.Event | None = None,
) -> None:
    """Run passes until `stop`; after one that did nothing, wait `interval_s`, or less if
    `wakeup` is set meanwhile. No error ends the loop: a store error is a warning, anything
    else is logged with its traceback (a bug must not silently stop the work), and the pass
    is retried."""
    rest = wakeup or stop
    while not stop.is_set():
        if wakeup is not None:
            wakeup.clear()  # before the pass: a wake-up during it starts the next at once
        try:
            busy = one_pass()
        except (*STORE_ERRORS, PersistenceError) as error:
            log.warning("pass failed, will retry: %s", type(error).__name__)
            busy = 0
        except Exception as error:
            log.exception("pass failed", exc_info=error)
            busy = 0
        if not busy:
            rest.wait(interval_s)
