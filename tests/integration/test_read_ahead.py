"""Catch-up reads the next batch while it writes this one (PostgreSQL), and a batch read
ahead is used only where the locked positions say it starts: never an event twice or lost."""

from __future__ import annotations

import threading
import uuid

from bootstrap.composition import Container
from domain.cart import Checkout, LineItem
from projections.audit import Auditor
from projections.log import events_after
from projections.runner import ProjectionRunner


def place(container: Container, count: int) -> None:
    items = (LineItem("s1", "a", 1, 2000), LineItem("s2", "b", 2, 555))
    for n in range(count):
        token = "pm_card_declined" if n % 3 == 0 else "pm_card_visa"
        container.app.place_checkout(
            Checkout("buyer", "EUR", items, token, "automatic"),
            client_id="c",
            idempotency_key=str(uuid.uuid4()),
        )


def all_events(container: Container) -> int:
    with container.db.read() as tx:
        return events_after(container.db, tx, 0)


def audited(container: Container) -> None:
    report = Auditor(container.runner.log, container.app.config.timing).run()
    assert report.ok, report.violations
    assert report.positions["orders"] == container.runner.lag()[0]


def test_catch_up_reads_ahead_on_postgres_and_projects_everything_once(
    container: Container,
) -> None:
    place(container, 30)
    runner = container.runner
    runner.batch_size = 7
    readers: list[str] = []
    read = runner.read

    def counting(tx, start):  # type: ignore[no-untyped-def]
        readers.append(threading.current_thread().name)
        return read(tx, start)

    runner.read = counting  # type: ignore[method-assign]
    assert runner.catch_up() == all_events(container)
    audited(container)
    ahead = sum(name.startswith("read-ahead") for name in readers)
    if container.db.dialect == "postgres":
        assert ahead >= len(readers) // 2, readers
    else:
        assert ahead == 0


def test_two_runners_catching_up_at_once_apply_each_event_once(container: Container) -> None:
    place(container, 30)
    other = ProjectionRunner(container.db, container.runner.log, container.runner.projections)
    counts: list[int] = []
    for runner in (container.runner, other):
        runner.batch_size = 5

    def catch_up(runner: ProjectionRunner) -> None:
        counts.append(runner.catch_up())

    threads = [threading.Thread(target=catch_up, args=(r,)) for r in (container.runner, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == all_events(container)
    audited(container)
