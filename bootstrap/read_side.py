"""The read side alone: the database, the event log and the work queue's timing, without
the PSP clients, the web stack or the workers.

The helpers of a parallel audit or build are forked from a fork server that imports this
(bootstrap/audit_pool.py), once, while the command starts: about half a second, where the
whole composition root needs a second and a half.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.codec import OrjsonTranscoder
from adapters.db import Database, open_database
from adapters.psp.unavailable import NoPSP
from app.application import PaymentsApp
from bootstrap.settings import Settings
from domain.psp import PSPPort
from domain.worklist import Timing
from projections.log import EventLog


@dataclass
class ReadSide:
    """An event store opened for reading and projecting only: it can never call the PSP."""

    app: PaymentsApp
    db: Database
    log: EventLog

    @property
    def timing(self) -> Timing:
        return self.app.config.timing

    def close(self) -> None:
        self.app.close()
        self.db.close()


def open_app(
    settings: Settings, psp: PSPPort | None = None, *, create_tables: bool = False
) -> PaymentsApp:
    """The application on the store `settings` name, with the event store's one codec
    (adapters/codec.py); without `psp`, one that can never call the PSP. Every process
    opens the store here: the composition root, migrations, the read side."""
    env = settings.event_store_env(create_tables=create_tables)
    return PaymentsApp(
        env, psp=psp or NoPSP(), config=settings.payments_config(), codec=OrjsonTranscoder
    )


def open_read_side(settings: Settings, pool_size: int = 2) -> ReadSide:
    """Open the store `settings` name for reading and projecting."""
    app = open_app(settings)
    db = open_database(settings.event_store_env(), pool_size=pool_size)
    return ReadSide(app, db, EventLog(db, app.mapper))
