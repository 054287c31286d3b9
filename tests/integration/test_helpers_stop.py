"""The helpers of a parallel audit or rebuild (bootstrap/audit_pool.py) stop with the
process that started them: SIGTERM stops them after their current slice, and the process
exits with STOPPED; killed outright, they end with it. Left running, they went on through
every slice left, writing into copies a second rebuild would reset, then waited forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from bootstrap.settings import Settings
from cli.common import STOPPED
from projections.audit import SLICES
from tests.integration.slow_slices import NotingPool

ROOT = Path(__file__).parents[2]


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url  # helpers run on PostgreSQL only


def start(database_url: str, notes: Path) -> subprocess.Popen[str]:
    """The slow-slices process, once both its helpers have taken a slice."""
    process = subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "tests.integration.slow_slices", database_url, str(notes)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(helpers(notes)) < 2:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the helpers never started"
        time.sleep(0.05)
    return process


def taken(notes: Path) -> list[tuple[int, int]]:
    """(helper pid, slice) for every slice taken so far."""
    text = notes.read_text() if notes.exists() else ""
    return [
        (int(pid), int(index)) for pid, index in (line.split() for line in text.split("\n") if line)
    ]


def helpers(notes: Path) -> set[int]:
    return {pid for pid, _ in taken(notes)}


def alive(pid: int) -> bool:
    """Running still: not gone, and not a zombie waiting for a parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextmanager
def ending(pids: set[int]) -> Iterator[None]:
    """Whatever the block finds, no helper outlives the test."""
    try:
        yield
    finally:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_gone(pids: set[int], seconds: float) -> set[int]:
    """The pids still alive after up to `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := {pid for pid in pids if alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_sigterm_stops_the_helpers_after_their_slice_and_exits_stopped(
    database_url: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes"
    process = start(database_url, notes)
    pids = helpers(notes)
    process.send_signal(signal.SIGTERM)
    with ending(pids):
        _, stderr = process.communicate(timeout=30)
        assert not wait_gone(pids, 0), "a helper outlived the process that stopped it"
    assert process.returncode == STOPPED, stderr
    assert len(taken(notes)) < SLICES / 2  # about two a helper, not the 64 of the whole run
    assert "leaked" not in stderr and "Traceback" not in stderr, stderr


def test_killed_outright_its_helpers_end_with_it(database_url: str, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    process = start(database_url, notes)
    pids = helpers(notes)
    process.kill()
    with ending(pids):
        process.communicate(timeout=30)  # the helpers and the fork server held its pipes too
        assert not wait_gone(pids, 0), "a helper outlived the process that was killed"
    assert len(taken(notes)) < SLICES / 2


def test_interrupted_while_starting_helpers_it_stops_those_already_started(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each helper starts as it is submitted: a SIGTERM between two submits (here, an
    interrupt raised by the second) must not leave the first going through every slice."""
    notes = tmp_path / "notes"
    submit = ProcessPoolExecutor.submit
    submitted: list[int] = []

    def interrupted(self: ProcessPoolExecutor, *args: Any, **kwargs: Any) -> Any:
        if submitted:
            deadline = time.monotonic() + 60
            while not taken(notes) and time.monotonic() < deadline:
                time.sleep(0.02)  # until the first helper is at work
            raise KeyboardInterrupt
        submitted.append(1)
        return submit(self, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", interrupted)
    pool = NotingPool(Settings(database_url=database_url), 3)
    with pytest.raises(KeyboardInterrupt):
        pool.start(str(notes))
    pids = helpers(notes)
    with ending(pids):
        assert len(pids) == 1 and not wait_gone(pids, 0)  # stopped and waited for
    assert pool.counter.value == SLICES
    assert 1 <= len(taken(notes)) < SLICES / 2
