"""POST /v1/checkouts: record the cart's payment order and charge the buyer once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Response, status
from starlette.concurrency import run_in_threadpool

from api.answers import answer
from api.auth import CheckoutCaller
from api.deps import App, Config, RequiredKey
from api.pages.tokens import return_url
from api.problems import responses
from api.schemas import CheckoutIn, OrderOut
from app.application import PaymentsApp, Written
from bootstrap.settings import Settings
from domain.order import PaymentOrder

router = APIRouter(tags=["checkouts"])
REPLAY: dict[int | str, dict[str, Any]] = {
    200: {"model": OrderOut, "description": "Idempotent replay of an earlier request"}
}


@router.post(
    "/v1/checkouts",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderOut,
    responses=REPLAY | responses(400, 401, 403, 409, 413, 422, 503),
)
async def create_checkout(
    body: CheckoutIn, key: RequiredKey, caller: CheckoutCaller, app: App, settings: Config
) -> Response:
    """Place a checkout and run its first attempt within the PSP timeout.

    201 with the new order, or 200 with the same order when the Idempotency-Key was seen
    before with the same body (422 if the body differs; 409 while the first request is
    still waiting for the PSP).
    """
    return await place(app, settings, body, caller.client_id, key)


async def place(
    app: PaymentsApp, settings: Settings, body: CheckoutIn, client_id: str, key: str
) -> Response:
    """The route's work once its inputs are valid (also the checkout lane's:
    api/checkout_lane.py): place the order, answer with it."""
    order_id = PaymentOrder.create_id(client_id, key)
    placing = app.place_checkout_async if app.checkout_async else _on_a_thread(app.place_checkout)
    written = await placing(
        body.to_domain(),
        client_id=client_id,
        idempotency_key=key,
        return_url=return_url(order_id, settings, body.return_url),
    )
    return answer(written, 201, Location=f"/v1/payment-orders/{written.order.id}")


def _on_a_thread(place: Callable[..., Written]) -> Callable[..., Awaitable[Written]]:
    """A PSP connector without an async client (Stripe's SDK) waits on a worker thread."""

    async def placed(*args: Any, **kwargs: Any) -> Written:
        return await run_in_threadpool(place, *args, **kwargs)

    return placed
