"""Payment orders: read one (or its history, or a past version) and act on it."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from adapters.db import Database
from api.answers import answer
from api.auth import AnyCaller, Caller, OpsCaller
from api.deps import App, Config, Db, OptionalKey, OrderId
from api.pages.tokens import return_url
from api.problems import invalid, responses
from api.reads import MinPosition, await_position, caught_up
from api.schemas import (
    AttemptIn,
    CaptureIn,
    EventsOut,
    Identifier,
    OrderOut,
    OrdersPage,
    RefundIn,
    ResolveIn,
    event_out,
)
from app.application import PaymentsApp
from domain.statuses import OrderStatus
from projections import queries
from projections.documents import order_json

router = APIRouter(prefix="/v1/payment-orders", tags=["payment orders"])
COMMAND_ERRORS = responses(400, 401, 403, 404, 409, 413, 422, 503)


@router.get("", responses=responses(401, 403, 422, 503))
def list_orders(
    caller: AnyCaller,
    db: Db,
    status: Annotated[OrderStatus | None, Query()] = None,
    buyer_id: Annotated[Identifier | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    min_position: MinPosition = None,
) -> OrdersPage:
    """A page of orders, newest first; pass `next_cursor` back as `cursor` for the next."""
    if min_position is not None:
        await_position(db, min_position)
    try:
        page = queries.orders(
            db,
            client_id=None if caller.is_ops else caller.client_id,
            status=status.value if status else None,
            buyer_id=buyer_id,
            limit=limit,
            cursor=cursor,
        )
    except ValueError:
        raise invalid("cursor", "not a cursor from this API") from None
    orders = [OrderOut.model_validate(o) for o in page.items]
    return OrdersPage(orders=orders, next_cursor=page.next_cursor)


@router.get("/{order_id}", response_model=OrderOut, responses=responses(401, 403, 404, 422, 503))
async def get_order(
    order_id: OrderId,
    caller: AnyCaller,
    request: Request,
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    min_position: MinPosition = None,
) -> Response:
    """The order from the read model; from the event store as it was at `version`, or when
    the read model has not yet reached `min_position` (read-your-writes)."""
    container = request.app.state.container  # not App/Db dependencies: the hottest route
    if version is None and min_position is None:
        found = await queries.order_async(container.db, str(order_id))
        if found and caller.may_see(found[0]):
            return Response(found[1], media_type="application/json")  # stored as served
    return await run_in_threadpool(
        _order_from_store, order_id, caller, container.app, container.db, version, min_position
    )


def _order_from_store(
    order_id: UUID,
    caller: Caller,
    app: PaymentsApp,
    db: Database,
    version: int | None,
    min_position: int | None,
) -> Response:
    """The blocking paths: read-your-writes on the read model, or a replay of the store."""
    if version is None and (min_position is None or caught_up(db, min_position)):
        found = queries.order(db, str(order_id))
        if found and caller.may_see(found[0]):
            return Response(found[1], media_type="application/json")
    order = app.get_order(order_id, version=version, client=caller.scope)
    return Response(order_json(order), media_type="application/json")


@router.get("/{order_id}/events", responses=responses(401, 403, 404, 422, 503))
def get_events(order_id: OrderId, caller: AnyCaller, app: App) -> EventsOut:
    """The order's audit trail: every event, oldest first."""
    events = app.history(order_id, client=caller.scope)
    return EventsOut(events=[event_out(e) for e in events])


@router.post(
    "/{order_id}/attempts", status_code=201, response_model=OrderOut, responses=COMMAND_ERRORS
)
def add_attempt(
    order_id: OrderId,
    body: AttemptIn,
    caller: AnyCaller,
    app: App,
    settings: Config,
    key: OptionalKey = None,
) -> Response:
    """Try another payment method after a decline, before the session ends."""
    back = return_url(order_id, settings, body.return_url)
    written = app.add_attempt(
        order_id, body.payment_method, key, client=caller.scope, return_url=back
    )
    return answer(written, 201)


@router.post("/{order_id}/capture", response_model=OrderOut, responses=COMMAND_ERRORS)
def capture(
    order_id: OrderId,
    caller: AnyCaller,
    app: App,
    body: CaptureIn | None = None,
    key: OptionalKey = None,
) -> Response:
    """Capture all (no amount) or part of a manual-capture order's authorization."""
    amount = body.amount if body else None
    return answer(app.capture(order_id, amount, key, client=caller.scope), 200)


@router.post("/{order_id}/cancel", response_model=OrderOut, responses=COMMAND_ERRORS)
def cancel(order_id: OrderId, caller: AnyCaller, app: App, key: OptionalKey = None) -> Response:
    """Void the authorization, or close an order that was never authorized."""
    return answer(app.cancel(order_id, key, client=caller.scope), 200)


@router.post(
    "/{order_id}/refunds", status_code=201, response_model=OrderOut, responses=COMMAND_ERRORS
)
def refund(
    order_id: OrderId,
    body: RefundIn,
    caller: AnyCaller,
    app: App,
    key: OptionalKey = None,
) -> Response:
    """Refund part or all of what was captured, split back across sellers in proportion."""
    return answer(app.refund(order_id, body.amount, key, client=caller.scope), 201)


@router.post("/{order_id}/resolve", response_model=OrderOut, responses=COMMAND_ERRORS)
def resolve(order_id: OrderId, body: ResolveIn, caller: OpsCaller, app: App) -> Response:
    """Record an operator's finding for an order in manual review (ops only; audited with
    who and why)."""
    operator = f"{body.operator} ({caller.client_id})" if body.operator else caller.client_id
    return answer(app.resolve(order_id, body.outcome, body.note, operator), 200)
