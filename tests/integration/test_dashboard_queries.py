"""Dashboard buckets start where they should on both stores (PostgreSQL's CAST rounds)."""

from __future__ import annotations

from bootstrap.composition import Container
from projections import dashboard

HOUR = 3600.0


def test_failures_fall_in_the_hour_and_minute_they_happened(container: Container) -> None:
    base = 1_800_000_000.0  # a whole hour
    times = [base + 1, base + 1799.9, base + 1800.1, base + 3599.9, base + 3600.0]
    with container.db.transaction() as tx:
        tx.executemany(
            "INSERT INTO failure_log (order_id, version, kind, event, number, code, message, at) "
            "VALUES (%s, %s, 'authorize', 'PSPTimedOut', 1, 'psp_timeout', 'slow', %s)",
            [(f"order-{n}", n, at) for n, at in enumerate(times)],
        )
    board = dashboard.failures(container.db, base + 3700, window_s=4 * HOUR, stuck_after_s=60)
    hours = {row["hour"]: row["count"] for row in board["failures_by_hour"]}
    assert hours == {base: 4, base + HOUR: 1}
    minutes = dashboard.psp_health(container.db, base + 3700, window_s=2 * HOUR)
    assert {row["minute"]: row["count"] for row in minutes}[base + 1740] == 1  # 1799.9 s in
