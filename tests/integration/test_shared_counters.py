"""The directory `payments serve` keeps its processes' counters in (bootstrap/shared_counters)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bootstrap import shared_counters
from bootstrap.shared_counters import VARIABLE, shared_directory


@pytest.fixture
def temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv(VARIABLE, raising=False)
    return tmp_path


def leftover(root: Path, name: str, age_s: float) -> Path:
    """A counters directory as a serve leaves it, made `age_s` ago."""
    directory = root / (shared_counters.PREFIX + name)
    directory.mkdir()
    (directory / "counter_4242.db").write_bytes(b"")
    then = time.time() - age_s
    os.utime(directory, (then, then))
    return directory


def test_a_directory_is_made_for_the_block_and_removed_after(temporary: Path) -> None:
    with shared_directory() as directory:
        assert os.environ[VARIABLE] == directory and Path(directory).parent == temporary
        assert Path(directory).is_dir()
    assert VARIABLE not in os.environ and not Path(directory).exists()


def test_a_directory_given_is_used_and_kept(
    temporary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = temporary / "mine"
    given.mkdir()
    monkeypatch.setenv(VARIABLE, str(given))
    with shared_directory() as directory:
        assert directory == str(given)
    assert given.is_dir() and os.environ[VARIABLE] == str(given)


def test_directories_of_killed_serves_are_removed_and_live_ones_kept(temporary: Path) -> None:
    killed = leftover(temporary, "killed", 60)  # nobody holds its lock
    running = leftover(temporary, "running", 60)
    held = os.open(running / shared_counters.LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # as its serve does (another open file: a conflict)
    starting = leftover(temporary, "starting", 1)  # maybe between making it and locking it
    try:
        with shared_directory() as directory:
            assert not killed.exists()
            assert running.is_dir() and starting.is_dir()
            mine = os.open(Path(directory) / shared_counters.LOCK, os.O_RDWR)
            with pytest.raises(BlockingIOError):  # held while it is in use
                fcntl.flock(mine, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.close(mine)
    finally:
        os.close(held)


def test_without_a_usable_temporary_directory_each_process_counts_for_itself(
    temporary: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(temporary / "gone"))
    with shared_directory() as directory:
        assert directory == "" and VARIABLE not in os.environ
    assert "counters kept per process" in capsys.readouterr().err


def test_a_process_that_counts_in_shared_files_makes_one_metrics(tmp_path: Path) -> None:
    """Two would write the same entries, each its own count: increments lost."""
    probe = (
        "from bootstrap.metrics import Metrics\n"
        "first = Metrics()\n"
        "assert first.exposed is not first.registry  # every process's totals\n"
        "try:\n"
        "    Metrics()\n"
        "except RuntimeError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter, a fixed probe
        [sys.executable, "-c", probe],
        env=os.environ | {VARIABLE: str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "one Metrics per process when counters are shared"
