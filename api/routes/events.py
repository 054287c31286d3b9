"""GET /v1/events: the feed of public events, oldest first, paged by an opaque cursor.

A checkout client sees its own orders' events; an ops key sees all.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.auth import AnyCaller
from api.deps import Db
from api.problems import invalid, responses
from domain.inputs import ascii_int
from projections import public_events

router = APIRouter(tags=["events"])
EventType = Literal[public_events.TYPES]  # type: ignore[valid-type]


class PublicEventsPage(BaseModel):
    """A page of public events; pass `next_cursor` as `after` for the next one."""

    data: list[dict[str, Any]]
    next_cursor: str | None
    has_more: bool


@router.get("/v1/events", responses=responses(401, 403, 422, 503))
def list_events(
    caller: AnyCaller,
    db: Db,
    after: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    type: Annotated[EventType | None, Query()] = None,
) -> PublicEventsPage:
    """Public events after the cursor (from the first without one), at most `limit`."""
    rows = public_events.page(db, _cursor(after), limit + 1, type, caller.scope)
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = f"{rows[-1]['position']}.{rows[-1]['sub']}" if rows else after
    return PublicEventsPage(
        data=[json.loads(r["body"]) for r in rows], next_cursor=cursor, has_more=more
    )


def _cursor(after: str | None) -> tuple[int, int] | None:
    if after is None:
        return None
    position, _, sub = after.partition(".")
    parsed = ascii_int(position), ascii_int(sub, high=9)
    if parsed[0] is None or parsed[1] is None:
        raise invalid("after", "not a cursor from this API")
    return parsed[0], parsed[1]
