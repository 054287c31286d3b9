"""The directory `payments serve` keeps its processes' counters in (bootstrap/shared_counters)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bootstrap import shared_counters
from bootstrap.shared_counters import VARIABLE, shared_directory


@pytest.fixture
def temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv(VARIABLE, raising=False)
    return tmp_path


def ended_pid() -> int:
    """The pid of a process that has ended."""
    script = "import os; print(os.getpid())"
    return int(
        subprocess.run([sys.executable, "-c", script], capture_output=True, check=True).stdout  # noqa: S603
    )


def leftover(root: Path, name: str, *files: str) -> Path:
    directory = root / (shared_counters.PREFIX + name)
    directory.mkdir()
    for file in files:
        (directory / file).write_bytes(b"")
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
    dead = ended_pid()
    killed = leftover(temporary, "killed", f"counter_{dead}.db", f"histogram_{dead}.db")
    running = leftover(temporary, "running", f"counter_{dead}.db", f"counter_{os.getpid()}.db")
    starting = leftover(temporary, "starting")
    with shared_directory():
        assert not killed.exists()
        assert running.is_dir() and starting.is_dir()


def test_without_a_usable_temporary_directory_each_process_counts_for_itself(
    temporary: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(temporary / "gone"))
    with shared_directory() as directory:
        assert directory == "" and VARIABLE not in os.environ
    assert "counters kept per process" in capsys.readouterr().err
