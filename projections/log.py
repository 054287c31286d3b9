"""Reading the event store's notification log in batches, and rebuilding the orders touched.

Each batch costs one query for the log and one for the full history of the orders it
touches; every event is decoded once. Histories are cut at the batch's end so the state a
projection sees is exactly the state at its new position.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import takewhile
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent

from adapters.db import Database, Tx
from adapters.event_store import settled_below_sql
from domain.order import PaymentOrder
from projections.base import Moment, OrderChange
from projections.documents import is_refund, order_json
from projections.quarantine import describe

LogRow = tuple[int, UUID, int]
CHUNK_EVENTS = 2000
"""Events read at a time when reading whole histories in order-id order (the audit and a
rebuild): a few hundred orders."""


class EventLog:
    """The application's notification log, read with plain SQL."""

    def __init__(self, db: Database, mapper: Mapper[UUID]) -> None:
        self.db = db
        self.mapper = mapper
        sqlite = db.dialect == "sqlite"
        self._position = position_column(db)
        self._history_select = (  # what `_decoded` takes, in the order it takes it
            f"SELECT {self._position}, originator_id, originator_version, topic, state "  # noqa: S608
            f"FROM {db.events_table}"
        )
        self._hex_ids = sqlite
        # SQLite commits one writer at a time, in position order: every row is settled.
        settled = "1" if sqlite else f"notification_id < {settled_below_sql(db.events_table)}"
        self._read_sql = (
            f"SELECT {self._position}, originator_id, originator_version, {settled} "  # noqa: S608
            f"FROM {db.events_table} WHERE {self._position} > %s "
            f"ORDER BY {self._position} LIMIT %s"
        )

    def head(self, tx: Tx) -> int:
        """The position of the newest event (0 when empty)."""
        return self.head_of(self.db, tx)

    @staticmethod
    def head_of(db: Database, tx: Tx) -> int:
        return int(tx.execute(head_sql(db))[0][0] or 0)

    def count_after(self, tx: Tx, after: int) -> int:
        """How many events lie after position `after`."""
        return events_after(self.db, tx, after)

    def read_settled(self, tx: Tx, after: int, limit: int) -> tuple[list[LogRow], bool]:
        """Up to `limit` events after `after`, stopping before the first one a transaction
        still running could yet be written below (adapters/event_store.py), so a reader that
        moves its position to the last row never skips an event; and whether it stopped
        there (held back) rather than at the end of the log."""
        rows = tx.execute(self._read_sql, (after, limit))
        settled = [(int(p), _uuid(o), int(v)) for p, o, v, _ in takewhile(lambda r: r[3], rows)]
        return settled, len(settled) < len(rows)

    def changes(
        self, tx: Tx, rows: list[LogRow], broken: dict[UUID, str] | None = None
    ) -> list[OrderChange]:
        """Rebuild every order the rows touch, as of the last row. With `broken`, an order
        whose events do not decode or replay is left out and recorded there (id -> error)
        instead of failing the whole batch."""
        positions: dict[UUID, dict[int, int]] = defaultdict(dict)
        for position, order_id, version in rows:
            positions[order_id][version] = position
        histories = self.positioned_histories(tx, list(positions), broken)
        changes = []
        for order_id, by_version in positions.items():
            if broken is not None and order_id in broken:
                continue
            last = max(by_version)
            history = histories.get(order_id, [])
            events = [e for _, e in history if e.originator_version <= last]
            try:
                changes.append(_change(order_id, events, by_version))
            except Exception as error:
                if broken is None:
                    raise
                broken[order_id] = describe(error)
        return changes

    @staticmethod
    def whole_changes(
        histories: dict[UUID, list[tuple[int, Any]]], upto: int, broken: dict[UUID, str]
    ) -> list[OrderChange]:
        """Each of these orders as of position `upto`, every one of its events up to there
        new (a build from zero); an order that does not replay goes to `broken`."""
        changes = []
        for order_id, history in histories.items():
            cut = [(p, e) for p, e in history if p <= upto]
            if not cut:
                continue  # written after `upto`: the runner takes it from there
            by_version = {e.originator_version: p for p, e in cut}
            try:
                changes.append(_change(order_id, [e for _, e in cut], by_version))
            except Exception as error:
                broken[order_id] = describe(error)
        return changes

    def history(self, tx: Tx, order_id: UUID) -> list[Any]:
        """Every event of one order, decoded."""
        return [e for _, e in self.positioned_histories(tx, [order_id]).get(order_id, [])]

    def histories_after(
        self,
        tx: Tx,
        after: UUID | None,
        *,
        low: UUID | None = None,
        high: UUID | None = None,
        broken: dict[UUID, str],
    ) -> tuple[dict[UUID, list[tuple[int, Any]]], UUID | None]:
        """The whole (position, event) histories of the next orders in id order after
        `after` (from the first when None), at least `low` and below `high` where given,
        about CHUNK_EVENTS events' worth, read as one range of the events' primary key; and
        the last order id they cover (None when there are no more). The order the limit cut
        into is left to the next call, or read alone when it is the only one. An order with
        an event that does not decode goes to `broken` instead."""
        bounds = {">": after, ">=": low, "<": high}
        given = {op: self._raw(value) for op, value in bounds.items() if value is not None}
        where = " AND ".join(f"originator_id {op} %s" for op in given) or "1 = 1"
        sql = (
            f"{self._history_select} WHERE {where} "
            "ORDER BY originator_id, originator_version LIMIT %s"
        )
        rows = tx.execute(sql, [*given.values(), CHUNK_EVENTS], binary=True)
        if not rows:
            return {}, None
        if len(rows) == CHUNK_EVENTS:  # the last order may go on past the limit
            cut = rows[-1][1]
            whole = len(rows)
            while whole and rows[whole - 1][1] == cut:
                whole -= 1
            rows = rows[:whole] if whole else self._history_rows(tx, [cut])
        return self._decoded(rows, broken), _uuid(rows[-1][1])

    def positioned_histories(
        self, tx: Tx, order_ids: list[UUID], broken: dict[UUID, str] | None = None
    ) -> dict[UUID, list[tuple[int, Any]]]:
        """Every event of each order, decoded, with its position in the log. With `broken`,
        an event that does not decode is recorded there (order id -> error) and the rest of
        that order's history left out, instead of raising."""
        return self._decoded(self._history_rows(tx, [self._raw(o) for o in order_ids]), broken)

    def _history_rows(self, tx: Tx, raw_ids: list[Any]) -> list[Any]:
        fragment, params = self.db.in_list(raw_ids)
        sql = (
            f"{self._history_select} WHERE originator_id {fragment} "
            "ORDER BY originator_id, originator_version"
        )
        return tx.execute(sql, params, binary=True)

    def _decoded(
        self, rows: list[Any], broken: dict[UUID, str] | None
    ) -> dict[UUID, list[tuple[int, Any]]]:
        """Each order's rows (in version order) as (position, event), by order id."""
        histories: dict[UUID, list[tuple[int, Any]]] = defaultdict(list)
        for position, originator, version, topic, state in rows:
            order_id = _uuid(originator)
            if broken is not None and order_id in broken:
                continue
            stored = StoredEvent(order_id, int(version), topic, bytes(state))
            try:
                event = self.mapper.to_domain_event(stored)
            except Exception as error:
                if broken is None:
                    raise
                broken[order_id] = describe(error)
                histories.pop(order_id, None)
                continue
            histories[order_id].append((int(position), event))
        return histories

    def _raw(self, order_id: UUID) -> Any:
        return order_id.hex if self._hex_ids else order_id


def position_column(db: Database) -> str:
    """The column that holds an event's position in the log."""
    return "rowid" if db.dialect == "sqlite" else "notification_id"


def events_after(db: Database, tx: Tx, after: int) -> int:
    """How many events lie after position `after`. Not `head - after`: on PostgreSQL
    positions come from transaction ids, with gaps between them."""
    sql = f"SELECT COUNT(*) FROM {db.events_table} WHERE {position_column(db)} > %s"  # noqa: S608
    return int(tx.execute(sql, (after,))[0][0])


def head_sql(db: Database) -> str:
    """SQL for the position of the newest event (NULL when the log is empty)."""
    return f"SELECT MAX({position_column(db)}) FROM {db.events_table}"  # noqa: S608


def replay(events: Sequence[Any]) -> PaymentOrder:
    """The order an order's history (oldest first) builds."""
    order: Any = None
    for event in events:
        order = event.mutate(order)
    if not isinstance(order, PaymentOrder):
        raise LookupError("the history does not start with Placed")
    return order


def _change(order_id: UUID, events: list[Any], positions: dict[int, int]) -> OrderChange:
    """Replay the order once, noting the moments of its new events on the way."""
    order: Any = None
    new: list[tuple[int, Any]] = []
    moments: list[Moment] = []
    for event in events:
        before = order.status if order is not None else None
        order = event.mutate(order)
        position = positions.get(event.originator_version)
        if position is None:
            continue
        new.append((position, event))
        changed = order.status != before
        if changed or is_refund(event):
            moment = Moment(position, event, order.status.value, changed, _document(order))
            moments.append(moment)
    if not isinstance(order, PaymentOrder):
        raise LookupError(f"the events of order {order_id} do not start with Placed")
    return OrderChange(order_id, order, tuple(new), tuple(moments))


def _document(order: PaymentOrder) -> str | None:
    """The order's document now, or None if it cannot be written: then only the read models
    that need it quarantine the order (as before moments), not every read model."""
    try:
        return order_json(order)
    except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
        return None


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
