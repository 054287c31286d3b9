"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI

from api import openapi, pages, problems
from api.checkout_lane import CheckoutLane
from api.limits import BodySizeLimit, InputGuard
from api.order_reads import OrderReads
from api.routes import (
    checkouts,
    events,
    health,
    operations,
    orders,
    reconciliation,
    webhook_endpoints,
    webhooks,
)
from api.shedding import LoadShedder
from api.webhook_lane import WebhookLane
from bootstrap.composition import Container
from bootstrap.settings import Settings

ASYNC_WRITERS = 8
"""Connections for the checkouts' event-store writes on the event loop, per process: each
write is one short round trip, so a few serve hundreds of checkouts at once."""


def create_app(container: Container | None) -> FastAPI:
    """The HTTP API over a built container (None only to render the OpenAPI document)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        """The read side's event-loop pool lives as long as the server's loop."""
        if container:
            threads = to_thread.current_default_thread_limiter()
            threads.total_tokens = container.settings.http_threads
            await container.db.open_async()
            await container.app.open_async(ASYNC_WRITERS)
        try:
            yield
        finally:
            if container:
                await container.db.close_async()
                await container.app.close_async()
                await container.close_async()

    api = FastAPI(
        lifespan=lifespan,
        title="Marketplace payments",
        version="1.0.0",
        description="Pay-in for marketplaces: one charge per cart, every failure recorded.",
    )
    api.state.container = container
    problems.install(api)
    openapi.install(api)
    max_bytes = container.settings.max_body_bytes if container else Settings().max_body_bytes
    if container:  # innermost: behind the shedder and the input guard, like every route
        api.add_middleware(OrderReads, db=container.db, keys=container.settings.keys)
        api.add_middleware(CheckoutLane, container=container)
        api.add_middleware(WebhookLane, payments=container.app)
    api.add_middleware(BodySizeLimit, max_bytes=max_bytes)
    api.add_middleware(InputGuard)
    settings = container.settings if container else Settings()
    shed = container.metrics.requests_shed.inc if container else lambda: None
    api.add_middleware(LoadShedder, limit=settings.max_in_flight, on_shed=shed)  # sheds first
    for module in (
        checkouts,
        orders,
        events,
        webhook_endpoints,
        webhooks,
        operations,
        reconciliation,
        health,
    ):
        api.include_router(module.router)
    pages.install(api)
    return api
