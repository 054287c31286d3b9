"""The calls a `serve`'s processes share (bootstrap/recent.py), final or in flight: what one adds,
another finds; a call never added is never found, even where its slot is taken."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bootstrap import recent
from bootstrap.recent import (
    FILE,
    IN_FLIGHT_FILE,
    SLOTS,
    WIDTH,
    CallsInFlight,
    FinalCalls,
    SharedCalls,
)
from bootstrap.shared_counters import VARIABLE


def test_what_one_table_adds_another_on_the_same_file_finds(tmp_path: Path) -> None:
    one, other = SharedCalls(tmp_path / FILE), SharedCalls(tmp_path / FILE)
    one.add("order:authorize:1")
    assert "order:authorize:1" in other
    assert "order:authorize:2" not in other
    assert 42 not in other
    assert (tmp_path / FILE).stat().st_size == SLOTS * WIDTH


def test_another_process_finds_what_this_one_added(tmp_path: Path) -> None:
    SharedCalls(tmp_path / FILE).add("written here")
    code = (
        "import sys; from pathlib import Path; from bootstrap.recent import SharedCalls; "
        "t = SharedCalls(Path(sys.argv[1])); assert 'written here' in t; "
        "assert 'never written' not in t; t.add('written there')"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / FILE)], check=True)  # noqa: S603
    assert "written there" in SharedCalls(tmp_path / FILE)


def test_a_slot_taken_by_a_later_call_forgets_the_first_and_finds_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recent, "SLOTS", 1)  # one slot: every call takes it
    table = SharedCalls(tmp_path / "one-slot")
    table.add("first")
    table.add("second")
    assert "second" in table
    assert "first" not in table  # forgotten: the webhook takes the slow way round
    assert "third" not in table  # never added: never found


def test_final_calls_are_this_process_s_and_with_a_serve_every_process_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    alone = FinalCalls.of_this_serve(10)
    assert alone.shared is None
    alone.add("a")
    assert "a" in alone
    monkeypatch.setenv(VARIABLE, str(tmp_path))
    recorder, other = FinalCalls.of_this_serve(10), FinalCalls.of_this_serve(10)
    recorder.add("b")
    assert "b" in other and "b" not in other.local
    assert "a" not in other
    monkeypatch.setenv(VARIABLE, str(tmp_path / "gone"))
    assert FinalCalls.of_this_serve(10).shared is None  # no such directory: its own alone


def test_a_call_in_flight_is_found_until_taken_out_or_past_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / IN_FLIGHT_FILE
    one, other = CallsInFlight(path), CallsInFlight(path)
    later = time.monotonic() + 30
    one.add("a", later)
    assert "a" in other and "b" not in other and 42 not in other
    other.discard("a")
    assert "a" not in one
    other.discard("never added")  # nothing there: nothing happens
    one.add("gone", time.monotonic() - 1)  # a deadline passed: absent, as if taken out
    assert "gone" not in other
    one.add("soon", time.monotonic() + 1.5)
    monkeypatch.setattr(time, "monotonic", lambda: later + 1)  # the clock every process reads
    assert "soon" not in other
    monkeypatch.undo()
    monkeypatch.setattr(recent, "SLOTS", 1)  # one slot: every call takes it
    table = CallsInFlight(tmp_path / "one-slot")
    table.add("first", later)
    table.add("second", later)
    table.discard("first")  # its slot is the second's now: left alone
    assert "second" in table and "first" not in table


def test_the_calls_in_flight_are_shared_only_under_a_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    assert CallsInFlight.of_this_serve(IN_FLIGHT_FILE) is None
    monkeypatch.setenv(VARIABLE, str(tmp_path / "gone"))  # cannot be made: none, no error
    assert CallsInFlight.of_this_serve(IN_FLIGHT_FILE) is None
    monkeypatch.setenv(VARIABLE, str(tmp_path))
    waiting, webhook = (CallsInFlight.of_this_serve(IN_FLIGHT_FILE) for _ in range(2))
    assert isinstance(waiting, CallsInFlight) and isinstance(webhook, CallsInFlight)
    waiting.add("order:authorize:1", time.monotonic() + 30)
    assert "order:authorize:1" in webhook
    assert "order:authorize:1" not in SharedCalls(tmp_path / FILE)  # a table of its own
