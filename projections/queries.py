"""Queries the API answers from the read models."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from adapters.db import Database
from projections.log import head_sql


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def log_head(db: Database) -> int:
    """The position of the newest event in the store (one statement: retried once on a
    broken connection, like every `Database.one`)."""
    return int(db.one(head_sql(db))[0][0] or 0)


ORDER_SQL = "SELECT client_id, document FROM order_view WHERE order_id = %s"


def order(db: Database, order_id: str) -> tuple[str, str] | None:
    """(client id, API document as the stored JSON text) of one order, if the read model
    has it."""
    rows = db.one(ORDER_SQL, (order_id,))
    return (str(rows[0][0]), str(rows[0][1])) if rows else None


async def order_async(db: Database, order_id: str) -> tuple[str, str] | None:
    """`order`, awaited: the status page's hot path, served without a thread hop."""
    rows = await db.one_async(ORDER_SQL, (order_id,))
    return (str(rows[0][0]), str(rows[0][1])) if rows else None


async def orders_async(db: Database, order_ids: list[str]) -> dict[str, tuple[str, str]]:
    """`order_async` for many orders in one statement: order id -> (client id, document)."""
    fragment, params = db.in_list(order_ids)
    rows = await db.one_async(
        f"SELECT order_id, client_id, document FROM order_view WHERE order_id {fragment}",  # noqa: S608
        params,
    )
    return {str(o): (str(c), str(d)) for o, c, d in rows}


def orders(
    db: Database,
    *,
    client_id: str | None,
    status: str | None,
    buyer_id: str | None,
    limit: int,
    cursor: str | None,
) -> Page:
    """Newest first, filtered; `cursor` continues after the last item of the previous page."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("client_id", client_id), ("status", status), ("buyer_id", buyer_id)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if cursor:
        created_at, order_id = decode_cursor(cursor)
        where.append("(created_at < %s OR (created_at = %s AND order_id < %s))")
        params += [created_at, created_at, order_id]
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = (
        f"SELECT document, created_at, order_id FROM order_view {clause} "  # noqa: S608
        "ORDER BY created_at DESC, order_id DESC LIMIT %s"
    )
    rows = db.one(sql, [*params, limit + 1])
    items = [json.loads(r[0]) for r in rows[:limit]]
    more = len(rows) > limit
    return Page(items, encode_cursor(rows[limit - 1][1], rows[limit - 1][2]) if more else None)


def encode_cursor(created_at: float, order_id: str) -> str:
    raw = json.dumps([created_at, order_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raises ValueError for a cursor we did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, order_id = json.loads(raw)
    except (ValueError, TypeError) as error:
        raise ValueError("not a cursor from this API") from error
    if not isinstance(created_at, int | float) or not isinstance(order_id, str):
        raise ValueError("not a cursor from this API")
    return float(created_at), order_id
