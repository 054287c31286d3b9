"""The directory where the processes of one `payments serve` keep their Prometheus counters.

prometheus_client's multiprocess mode: a process that imports prometheus_client with
PROMETHEUS_MULTIPROC_DIR set keeps its counters in files there, and a scrape of any of
them sums the files of all. The `payments` script sets it before `serve` imports anything,
so the parent's recovery worker and projection runner count there too, beside every HTTP
child (which inherit it). This module imports nothing else, so that it can run first.

The `serve` that made a directory holds an exclusive lock on a file in it while it runs; the
kernel drops the lock however the process ends, so a later `serve` that can take it knows
the directory was left by a killed one (whatever its process ids, in whatever container).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "payments-metrics-"
LOCK = "serve.lock"
YOUNG_S = 10
"""A directory is never removed this soon after it was made: its serve may be between
making it and taking its lock."""


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
        lock = _lock(Path(directory) / LOCK)
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
        os.close(lock)


def _removing(directory: str) -> Callable[[int, FrameType | None], None]:
    """A SIGTERM handler that removes `directory`, then ends the process by the signal as
    before: for a SIGTERM outside `serve`'s own handler (cli/common.exiting_on_sigterm,
    which ends the process through the `finally` below), that is while it starts, or a
    second one while it closes; without it, such a stop would leave the directory."""

    def handler(signum: int, _: FrameType | None) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    return handler


def _lock(path: Path) -> int:
    """An exclusive lock on `path` (made if missing), held until the descriptor is closed;
    BlockingIOError if another process holds it."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


def _remove_stale() -> None:
    """Remove the directories of earlier serves killed before they could (SIGKILL, an OOM
    kill, or the crash tests' failpoints): those whose lock nobody holds. One in use, or
    another user's, is left."""
    for directory in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        if _age_s(directory) < YOUNG_S:
            continue
        try:
            lock = _lock(directory / LOCK)  # made if its serve was killed before it locked
        except OSError:  # held by a serve running now, or not ours to open
            continue
        try:
            shutil.rmtree(directory, ignore_errors=True)
        finally:
            os.close(lock)


def _age_s(directory: Path) -> float:
    try:
        return time.time() - directory.stat().st_mtime
    except OSError:
        return 0.0
