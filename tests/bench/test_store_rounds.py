"""The bench's catch-up and audit rounds: how rounds add up, and a library runner that starts
from the log's first event in every round."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from bench import library
from bench.__main__ import STORE_FIGURES, _round_lines, summed_rounds
from bootstrap.settings import Settings
from tests.bench.stores import with_checkouts


def _round(n: int, seconds: float, ok: bool = True) -> dict[str, Any]:
    rate = {"events": 60_000, "seconds": seconds, "per_second": round(60_000 / seconds)}
    runner = {"events": 1_000 * n, "seconds": 1.0, "per_second": 1_000 * n}
    return {
        "round": n,
        "catch_up": rate,
        "library_runner": runner,
        "audit": rate | {"ok": ok},
        "raw_decode": rate | {"events": 30_000},
    }


def test_store_figures_are_the_rounds_events_over_their_seconds() -> None:
    summed = summed_rounds([_round(1, 2.0), _round(2, 3.0), _round(3, 1.0)])

    # 180,000 events in 6 s; a mean of the three rates would say 36,667 (30k, 20k, 60k)
    assert summed["catch_up"] == {"events": 180_000, "seconds": 6.0, "per_second": 30_000}
    assert summed["library_runner"] == {"events": 6_000, "seconds": 3.0, "per_second": 2_000}
    assert summed["raw_decode"] == {"events": 90_000, "seconds": 6.0, "per_second": 15_000}
    assert summed["audit"]["ok"] is True
    assert summed_rounds([_round(1, 2.0), _round(2, 2.0, ok=False)])["audit"]["ok"] is False


def test_the_table_shows_each_round_when_there_are_several() -> None:
    lines = _round_lines("events/s", [_round(1, 2.0), _round(2, 3.0)], STORE_FIGURES, "abcd")

    assert len(lines) == 4
    assert lines[2].split() == ["1", "30000", "1000", "30000", "30000"]
    assert lines[3].split() == ["2", "20000", "2000", "20000", "20000"]
    assert lines[1].split() == ["round", "a", "b", "c", "d"]
    assert _round_lines("events/s", [_round(1, 2.0)], STORE_FIGURES, "abcd") == []  # smoke: one


@pytest.mark.postgres
def test_the_library_runner_counts_from_the_first_event_in_every_round(
    postgres_url: str,
    simulator_server: Any,
    simulator: Any,  # reset: no faults left by an earlier test
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(database_url=postgres_url)
    with_checkouts(settings, simulator_server.url, 3)
    env = settings.event_store_env()
    base, _, query = postgres_url.partition("?")
    schema = query.removeprefix("schema=")
    with psycopg.connect(base) as conn:
        (events,) = conn.execute(
            f'SELECT count(*) FROM "{schema}".payments_events'  # noqa: S608 - our schema name
        ).fetchone() or (0,)
    assert events >= 9

    processed: list[str] = []
    count = library.CountingView.count

    def counted(view: library.CountingView, name: str, tracking: Any) -> None:
        processed.append(name)
        count(view, name, tracking)

    monkeypatch.setattr(library.CountingView, "count", counted)

    first = library.runner_rate(env, events, 20)
    in_first = len(processed)
    second = library.runner_rate(env, events, 20)

    # each run processes every event from the first (the second does not carry on from
    # where the first stopped), and stops as soon as it has, not at 20 s
    assert in_first == events
    assert len(processed) - in_first == events
    assert first[0] == second[0] == events
    assert first[1] < 20 and second[1] < 20
