"""What a projection is: named tables, fed batches of order changes inside one transaction."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar
from uuid import UUID

from adapters.db import Tx
from domain.order import PaymentOrder
from projections.documents import order_json


@dataclass(frozen=True)
class Moment:
    """The order just after one of a batch's events that the marketplace is told of (its
    status changed, or money went back): taken during the runner's one replay, so the read
    models that need the order as it was at each version (the public events) replay nothing."""

    position: int
    event: Any
    status: str
    """The status the event moved the order to (unchanged for a refund that keeps it)."""
    status_changed: bool
    document: str | None
    """The order's document (documents.order_json) as of this event; None if it could not
    be written (the read models that need it quarantine the order)."""

    def written(self) -> str:
        """The document, or the error a read model that needs it quarantines the order for."""
        if self.document is None:
            raise ValueError(
                f"the order's document at version {self.event.originator_version} is not JSON"
            )
        return self.document


@dataclass(frozen=True)
class OrderChange:
    """One order touched by a batch: its state after the batch, and the batch's events."""

    order_id: UUID
    order: PaymentOrder
    events: tuple[tuple[int, Any], ...]
    """(log position, domain event) pairs, in order."""
    moments: tuple[Moment, ...] = ()
    """The order as of each of those events that the marketplace is told of, in order."""

    @property
    def last_position(self) -> int:
        return self.events[-1][0]

    @cached_property
    def key(self) -> str:
        """The order id as the read models store it (made once, not once a row)."""
        return str(self.order_id)

    def after(self, position: int) -> OrderChange | None:
        """The part of this change a projection at `position` has not applied yet."""
        if self.events and self.events[0][0] > position:
            return self  # the usual case: all of it
        events = tuple(e for e in self.events if e[0] > position)
        moments = tuple(m for m in self.moments if m.position > position)
        return OrderChange(self.order_id, self.order, events, moments) if events else None

    def document(self) -> str:
        """The order's current document, taken from the last moment when that is now."""
        last = self.moments[-1] if self.moments else None
        if (
            last is not None
            and last.document
            and last.event.originator_version == self.order.version
        ):
            return last.document
        return order_json(self.order)


class Projection(ABC):
    """A read model. Its tables are named in `tables`; `suffix` addresses a rebuild's copy."""

    name: ClassVar[str]
    tables: ClassVar[dict[str, str]]
    """Table name -> its CREATE statements (with {table} for the name), ';'-separated."""

    def __init__(self, suffix: str = "") -> None:
        self.suffix = suffix
        self.fresh = False
        """Set during a build from zero (bulk.py): every row is new, so rows are copied in
        (COPY) rather than upserted, and there is nothing to delete."""

    @property
    def position_name(self) -> str:
        """Its row in projection_positions (a rebuild's copy has its own)."""
        return self.name + self.suffix

    def t(self, table: str) -> str:
        """The physical name of one of this projection's tables."""
        return table + self.suffix

    def create_statements(self) -> list[str]:
        statements = []
        for table, ddl in self.tables.items():
            for statement in ddl.split(";"):
                if statement.strip():
                    statements.append(statement.replace("{table}", self.t(table)).strip())
        return statements

    def table_statements(self) -> list[str]:
        """The tables alone, with their keys but without their other indexes."""
        return [s for s in self.create_statements() if not s.startswith("CREATE INDEX")]

    def index_statements(self) -> list[str]:
        """The other indexes: after a bulk load, building them once costs less than keeping
        them current row by row."""
        return [s for s in self.create_statements() if s.startswith("CREATE INDEX")]

    def write(
        self,
        tx: Tx,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        on_conflict: str,
    ) -> None:
        """Insert `rows` into one of this projection's tables, `on_conflict` saying what an
        existing row becomes (fresh tables: copied in, no conflict possible)."""
        if self.fresh:
            tx.append(self.t(table), columns, rows)
        else:
            tx.insert(f"INSERT INTO {self.t(table)} ({', '.join(columns)})", rows, on_conflict)

    @abstractmethod
    def apply(self, tx: Tx, changes: Sequence[OrderChange]) -> None:
        """Apply a batch of changes (all new to this projection) within `tx`."""
