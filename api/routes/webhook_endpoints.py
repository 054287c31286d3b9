"""Webhook endpoints: where the marketplace wants its public events pushed, signed.

An endpoint belongs to the API client that made it and receives that client's orders'
events (an ops key's endpoints, ops' own orders'); its `whsec_` secret is shown once, when
it is created. Deliveries follow the Standard Webhooks spec (adapters/outbound.py).
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from adapters import webhook_store
from adapters.outbound import check_url, new_secret
from api.auth import AnyCaller, Caller
from api.deps import Db
from api.problems import Problem, responses
from api.schemas import Strict
from domain.errors import OrderNotFound
from projections import public_events

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhook endpoints"])
Kind = Literal[(*public_events.TYPES, "*")]  # type: ignore[valid-type]
EndpointId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^we_[0-9a-f]+$")]


class EndpointIn(Strict):
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    events: Annotated[list[Kind], Field(min_length=1, max_length=len(public_events.TYPES) + 1)]


class EndpointOut(Strict):
    id: str
    url: str
    events: list[str]
    status: Literal["enabled", "disabled"]
    disabled_reason: str | None = None
    created: float


class EndpointCreated(EndpointOut):
    secret: str
    """Shown once: verify deliveries with it (Standard Webhooks)."""


class EndpointsOut(Strict):
    data: list[EndpointOut]


class DeliveriesOut(Strict):
    data: list[dict[str, Any]]


class RedeliverIn(Strict):
    event_id: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^evt_[0-9a-z_]+$")]


def _out(endpoint: webhook_store.Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "status": endpoint.status,
        "disabled_reason": endpoint.disabled_reason,
        "created": endpoint.created_at,
    }


def _owned(db: Any, caller: Caller, endpoint_id: str) -> webhook_store.Endpoint:
    endpoint = webhook_store.endpoint(db, endpoint_id)
    if endpoint is None or (caller.scope is not None and endpoint.client_id != caller.scope):
        raise OrderNotFound("no such webhook endpoint")
    return endpoint


@router.post("", status_code=201, responses=responses(401, 403, 422, 503))
def create_endpoint(
    body: EndpointIn, caller: AnyCaller, db: Db, request: Request
) -> EndpointCreated:
    """Subscribe a URL to public events (`["*"]` for all); answers the secret once."""
    settings = request.app.state.container.settings
    url = check_url(body.url, allow_private=settings.outbound_private_ok)
    endpoint = webhook_store.Endpoint(
        id=f"we_{secrets.token_hex(12)}",
        client_id=caller.client_id,
        url=url,
        events=tuple(dict.fromkeys(body.events)),
        secret=new_secret(),
        status="enabled",
        created_at=time.time(),
    )
    webhook_store.add_endpoint(db, endpoint)
    return EndpointCreated(**_out(endpoint), secret=endpoint.secret)


@router.get("", responses=responses(401, 403, 503))
def list_endpoints(caller: AnyCaller, db: Db) -> EndpointsOut:
    """The caller's endpoints (an ops key: all), without their secrets."""
    return EndpointsOut(
        data=[EndpointOut(**_out(e)) for e in webhook_store.endpoints(db, caller.scope)]
    )


@router.delete("/{endpoint_id}", status_code=204, responses=responses(401, 403, 404, 422, 503))
def delete_endpoint(endpoint_id: EndpointId, caller: AnyCaller, db: Db) -> Response:
    """Stop sending to an endpoint; its pending deliveries are canceled."""
    webhook_store.delete_endpoint(db, _owned(db, caller, endpoint_id).id)
    return Response(status_code=204)


@router.get("/{endpoint_id}/deliveries", responses=responses(401, 403, 404, 422, 503))
def list_deliveries(
    endpoint_id: EndpointId,
    caller: AnyCaller,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveriesOut:
    """The endpoint's latest delivery tries, newest first: time, status code or error,
    latency."""
    endpoint = _owned(db, caller, endpoint_id)
    return DeliveriesOut(data=webhook_store.attempts(db, endpoint.id, limit))


@router.post(
    "/{endpoint_id}/redeliver", status_code=202, responses=responses(401, 403, 404, 422, 503)
)
def redeliver(
    endpoint_id: EndpointId, body: RedeliverIn, caller: AnyCaller, db: Db
) -> dict[str, str]:
    """Send one event to the endpoint again, now."""
    endpoint = _owned(db, caller, endpoint_id)
    event = public_events.by_id(db, body.event_id)
    if event is None or event["client_id"] != endpoint.client_id:
        raise Problem(404, "not-found", "no such event for this endpoint")
    webhook_store.redeliver(db, endpoint, event, time.time())
    return {"status": "scheduled"}
