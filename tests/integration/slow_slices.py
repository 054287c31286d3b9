"""A process that hands slow slices to two helpers, as a parallel audit or rebuild does
(bootstrap/audit_pool.py), for tests/integration/test_helpers_stop.py to stop or kill.

    python -m tests.integration.slow_slices DATABASE_URL NOTES_FILE
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bootstrap.audit_pool import SlicePool
from bootstrap.read_side import ReadSide
from bootstrap.settings import Settings
from cli.common import STOPPED, exiting_on_sigterm

SLICE_S = 0.1


def note_slices(_: ReadSide, claimed: Callable[[], int | None], notes: str) -> int:
    """In a helper: note each slice taken (`pid index`), taking SLICE_S over it."""
    taken = 0
    while (index := claimed()) is not None:
        with Path(notes).open("a") as file:
            file.write(f"{os.getpid()} {index}\n")
        time.sleep(SLICE_S)
        taken += 1
    return taken


class NotingPool(SlicePool[int]):
    def start(self, notes: str) -> None:
        self._start(note_slices, notes)


def main() -> None:
    url, notes = sys.argv[1:3]
    with exiting_on_sigterm(STOPPED):
        pool = NotingPool(Settings(database_url=url), 3)  # this process and two helpers
        pool.start(notes)
        pool.results()  # this process takes no slice: it waits, as for a slow slice of its own


if __name__ == "__main__":
    main()
