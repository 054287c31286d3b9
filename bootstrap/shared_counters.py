"""The directory where the processes of one `payments serve` keep their Prometheus counters.

prometheus_client's multiprocess mode: a process that imports prometheus_client with
PROMETHEUS_MULTIPROC_DIR set keeps its counters in files there, and a scrape of any of
them sums the files of all. The `payments` script sets it before `serve` imports anything,
so the parent's recovery worker and projection runner count there too, beside every HTTP
child (which inherit it). This module imports nothing else, so that it can run first.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "payments-metrics-"


@contextmanager
def shared_directory() -> Iterator[str]:
    """A fresh temporary directory for the processes started inside, removed afterwards;
    or PROMETHEUS_MULTIPROC_DIR if it is already set (then kept: the operator's, or an
    enclosing call's); or "" without a writable temporary directory (each process then
    counts for itself, and says so on stderr)."""
    given = os.environ.get(VARIABLE)
    if given:
        yield given
        return
    try:
        _remove_stale()
        directory = tempfile.mkdtemp(prefix=PREFIX)
    except OSError as error:  # no writable temporary directory: count per process, as before
        sys.stderr.write(f"payments: counters kept per process ({error})\n")
        yield ""
        return
    os.environ[VARIABLE] = directory
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _removing(directory)) if main else None
    try:
        yield directory
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        os.environ.pop(VARIABLE, None)
        shutil.rmtree(directory, ignore_errors=True)


def _removing(directory: str) -> Callable[[int, FrameType | None], None]:
    """A SIGTERM handler that removes `directory`, then ends the process by the signal as
    before. uvicorn answers SIGTERM itself, then raises it again for the handler it found
    (this one) instead of returning; without it, every stop would leave the directory."""

    def handler(signum: int, _: FrameType | None) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    return handler


def _remove_stale() -> None:
    """Remove the directories of earlier serves killed before they could (SIGKILL, or the
    crash tests' failpoints): those where every process that counted has ended. One with no
    counts yet may be a serve starting now, and is left."""
    for directory in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        pids = {_pid(file.stem) for file in directory.glob("*.db")}
        if pids and not any(_alive(pid) for pid in pids):
            shutil.rmtree(directory, ignore_errors=True)


def _pid(stem: str) -> int:
    """The process of a counts file: `counter_<pid>`, `histogram_<pid>`, `gauge_<mode>_<pid>`
    (0, never alive, for a name of another form)."""
    tail = stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isascii() and tail.isdigit() else 0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True
