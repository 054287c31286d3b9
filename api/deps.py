"""Annotated dependency aliases shared by the routers."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Path, Request

from adapters.db import Database
from api.schemas import IdempotencyKey
from app.application import PaymentsApp
from bootstrap.settings import Settings

# The dependencies are `async def` though they never await: FastAPI runs a plain `def`
# dependency on the thread pool, a hop per dependency per request.


async def get_app(request: Request) -> PaymentsApp:
    app: PaymentsApp = request.app.state.container.app
    return app


App = Annotated[PaymentsApp, Depends(get_app)]


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.container.db
    return db


Db = Annotated[Database, Depends(get_db)]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.container.settings
    return settings


Config = Annotated[Settings, Depends(get_settings)]
OrderId = Annotated[UUID, Path(description="The payment order's id")]
RequiredKey = Annotated[IdempotencyKey, Header(alias="Idempotency-Key")]
OptionalKey = Annotated[
    IdempotencyKey | None,
    Header(alias="Idempotency-Key", description="Makes the command safe to retry"),
]
