"""The eventsourcing library's own rates on our event store: its ProjectionRunner (one
transaction per event, as its documentation shows), and raw read-and-decode of the log."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from psycopg.sql import SQL, Identifier

import domain.order  # noqa: F401 - the events' topics must resolve to classes


class EventLog(Application[UUID]):
    """Our event store, opened as a plain library Application (its tables are `payments_*`)."""

    name = "payments"


class CountingView(PostgresTrackingRecorder):
    """A materialised view in the library's documented style: a counter per event type,
    updated with the tracking record in one transaction per event."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema, table = Identifier(self.datastore.schema), Identifier("library_counters")
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (name text PRIMARY KEY, counter bigint)"
            ).format(schema, table)
        )
        self.increment = SQL(
            "INSERT INTO {0}.{1} VALUES (%s, 1) "
            "ON CONFLICT (name) DO UPDATE SET counter = {0}.{1}.counter + 1"
        ).format(schema, table)
        self.total = SQL("SELECT COALESCE(SUM(counter), 0) AS n FROM {0}.{1}").format(schema, table)

    def counted(self) -> int:
        """Events processed so far (positions have gaps: they are not a count)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.total)
            row = curs.fetchone()
        return int(row["n"]) if row else 0

    def count(self, name: str, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            self._insert_tracking(curs, tracking)
            curs.execute(self.increment, (name,), prepare=True)


class CountingProjection(Projection[CountingView]):
    name = "librarycount"

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.count(type(domain_event).__name__, tracking)


def runner_rate(env: dict[str, str], events: int, limit_s: float) -> tuple[int, float]:
    """(events, seconds) the library's ProjectionRunner takes for `events` from the log's
    start (its view and tracking from a previous run dropped), stopping at `limit_s`. The
    clock covers its start, as our build's covers ours, but not its stop (joining its
    threads), during which nothing more is counted: measured in several short rounds, that
    would be billed to it each time."""
    view_env = env | {"LIBRARYCOUNT_CREATE_TABLE": "y", "CREATE_TABLE": "n"}
    _drop_view(env)
    started = time.perf_counter()
    with ProjectionRunner(
        application_class=EventLog,
        projection_class=CountingProjection,
        view_class=CountingView,
        env=view_env,
    ) as runner:
        deadline = started + limit_s
        while time.perf_counter() < deadline:
            if runner.view.counted() >= events:
                break
            time.sleep(0.05)
        done = runner.view.counted()
        seconds = time.perf_counter() - started
    return done, seconds


def _drop_view(env: dict[str, str]) -> None:
    """The counting view's tables, so that the next runner starts from the first event."""
    app = EventLog(env | {"CREATE_TABLE": "n"})
    try:
        datastore = app.factory.datastore  # type: ignore[attr-defined]
        with datastore.transaction(commit=True) as curs:
            for table in (CountingProjection.name + "_tracking", "library_counters"):
                curs.execute(
                    SQL("DROP TABLE IF EXISTS {0}.{1}").format(
                        Identifier(datastore.schema), Identifier(table)
                    )
                )
    finally:
        app.close()


def read_and_decode_rate(env: dict[str, str], page: int = 1000) -> tuple[int, float]:
    """(events, seconds) to read the whole log with the library and decode every event."""
    app = EventLog(env | {"CREATE_TABLE": "n"})
    started = time.perf_counter()
    count, last = 0, 0
    while notifications := app.recorder.select_notifications(last + 1, page):
        for notification in notifications:
            app.mapper.to_domain_event(notification)
        count += len(notifications)
        last = notifications[-1].id
    seconds = time.perf_counter() - started
    app.close()
    return count, seconds
