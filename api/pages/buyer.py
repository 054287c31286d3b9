"""The buyer's status page, its polling endpoint, its retry endpoint, and the merchant's
`status-link` route.

Buyers hold no API key: each route here checks the capability token of the link
(api.pages.tokens) and answers "not found" for a wrong token exactly as for an unknown order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.answers import refuse_in_flight
from api.auth import AnyCaller
from api.deps import App, OrderId, RequiredKey
from api.pages.buyer_view import buyer_view, sellers
from api.pages.rendering import HtmlRoute, render
from api.pages.tokens import return_url, status_link, token_matches
from api.problems import Problem, responses
from api.schemas import AttemptIn
from app.application import PaymentsApp
from bootstrap.settings import Settings
from domain.errors import OrderNotFound
from domain.order import PaymentOrder
from projections.documents import order_document

pages = APIRouter(route_class=HtmlRoute, include_in_schema=False)
buyer_api = APIRouter(include_in_schema=False)
links = APIRouter(tags=["payment orders"])
Token = Annotated[str | None, Query(description="The capability token of the status link")]
JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
MAX_ATTEMPTS = 10
"""Attempts a buyer may make on one order: a cap on card testing through a leaked link."""


def settings_of(request: Request) -> Settings:
    """The running container's settings."""
    settings: Settings = request.app.state.container.settings
    return settings


def order_for_buyer(
    request: Request, app: PaymentsApp, order_id: str, token: str | None
) -> PaymentOrder:
    """The order, if the token opens it; any mismatch is 'not found' (no oracle)."""
    try:
        parsed = UUID(order_id)
    except ValueError:
        raise OrderNotFound("no such payment order") from None
    if not token_matches(parsed, token, settings_of(request)):
        raise OrderNotFound("no such payment order")
    return app.get_order(parsed)


def _view(order: PaymentOrder) -> dict[str, Any]:
    return buyer_view(order_document(order), datetime.now(UTC))


@pages.get("/status/{order_id}")
def status_page(order_id: str, request: Request, app: App, token: Token = None) -> Response:
    """The buyer's page: what was bought, from whom, and where the payment stands."""
    order = order_for_buyer(request, app, order_id, token)
    document = order_document(order)
    base = f"/status/{order.id}"
    context = {
        "view": _view(order),
        "sellers": sellers(document),
        "state_url": f"{base}/state?token={token}",
        "attempts_url": f"{base}/attempts?token={token}",
    }
    return render("status.html", context)


@buyer_api.get("/status/{order_id}/state")
def status_state(order_id: str, request: Request, app: App, token: Token = None) -> JSONResponse:
    """The buyer's view as JSON, for the page to poll while the payment is processing."""
    order = order_for_buyer(request, app, order_id, token)
    return _json(_view(order))


@buyer_api.post("/status/{order_id}/attempts", status_code=201)
def retry(
    order_id: str,
    body: AttemptIn,
    key: RequiredKey,
    request: Request,
    app: App,
    token: Token = None,
) -> JSONResponse:
    """Try another card (no API key: the link's token); errors are problem+json."""
    order = order_for_buyer(request, app, order_id, token)
    if len(order.attempts) >= MAX_ATTEMPTS:
        raise Problem(409, "too-many-attempts", "Too many attempts: please start a new checkout.")
    back = return_url(order.id, settings_of(request), body.return_url)
    written = app.add_attempt(order.id, body.payment_method, key, return_url=back)
    refuse_in_flight(written, "Your last try is still in progress.")
    code = status.HTTP_200_OK if written.replayed else status.HTTP_201_CREATED
    return _json(_view(written.order), code)


def _json(view: dict[str, Any], code: int = 200) -> JSONResponse:
    return JSONResponse(view, status_code=code, headers=JSON_HEADERS)


class StatusLinkOut(BaseModel):
    """A link for the buyer: it opens this order's status page, and nothing else, without an
    API key. A path on this API's host."""

    status_url: str


@links.get(
    "/v1/payment-orders/{order_id}/status-link", responses=responses(401, 403, 404, 422, 503)
)
def get_status_link(
    order_id: OrderId, caller: AnyCaller, app: App, request: Request
) -> StatusLinkOut:
    """The buyer's status-page link for an order this caller may see."""
    app.get_order(order_id, client=caller.scope)
    return StatusLinkOut(status_url=status_link(order_id, settings_of(request)))
