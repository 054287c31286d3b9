"""`payments audit` and `payments projections rebuild` stop on SIGTERM through their
`finally` blocks (helpers stopped, connections closed) and exit with STOPPED, not killed by
the signal (tests/integration/test_helpers_stop.py shows what that does to the helpers)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import cli.audit
from bootstrap.migrate import migrate
from bootstrap.settings import Settings
from cli.common import STOPPED
from cli.main import cli as command_line
from projections import rebuild


def terminated(*_: Any, **__: Any) -> Any:
    """Stands in for the work: this process is sent SIGTERM in the middle of it."""
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler raises before this ends
    raise AssertionError("SIGTERM did not stop the command")


@pytest.mark.parametrize(
    ("arguments", "work"),
    [
        (["projections", "rebuild"], (rebuild, "rebuild_all")),
        (["audit"], (cli.audit, "_with_progress")),
    ],
)
def test_a_batch_command_stops_on_sigterm_with_its_own_status(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    arguments: list[str],
    work: tuple[object, str],
) -> None:
    url = f"sqlite:///{tmp_path}/payments.db"
    migrate(Settings(database_url=url))
    monkeypatch.setattr(*work, terminated)

    def ignored(*_: object) -> None:  # without the command's own, SIGTERM would change nothing
        pass

    before = signal.signal(signal.SIGTERM, ignored)
    try:
        result = CliRunner().invoke(command_line, arguments, env={"PAYMENTS_DATABASE_URL": url})
        assert signal.getsignal(signal.SIGTERM) is ignored  # the handler it found is back
    finally:
        signal.signal(signal.SIGTERM, before)
    assert result.exit_code == STOPPED == 143, result.output
