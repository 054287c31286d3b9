"""The read models this service keeps, and creating their tables."""

from __future__ import annotations

from adapters import webhook_store
from adapters.db import Database
from domain.worklist import Timing
from projections import positions, quarantine
from projections.base import Projection
from projections.failures import FailuresProjection
from projections.ledger import LedgerProjection
from projections.orders import OrdersProjection
from projections.public_events import PublicEventsProjection
from projections.work_queue import WorkQueueProjection


def all_projections(timing: Timing, suffix: str = "") -> list[Projection]:
    """One instance of each read model (`suffix` names a rebuild's tables)."""
    return [
        OrdersProjection(suffix),
        FailuresProjection(suffix),
        LedgerProjection(suffix),
        WorkQueueProjection(timing, suffix),
        PublicEventsProjection(suffix),
    ]


NAMES = ("orders", "failures", "ledger", "work_queue", "public_events")


def create_tables(db: Database, projections: list[Projection]) -> None:
    """Create read-model tables and start each projection at position 0 (idempotent)."""
    with db.transaction() as tx:
        for projection in projections:
            for statement in projection.create_statements():
                tx.execute(statement)
        positions.create(tx, [p.position_name for p in projections])
        quarantine.create(tx)
        webhook_store.create(tx)
