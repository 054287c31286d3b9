"""Every failure becomes a problem document: the right status, no traceback, no echo."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from eventsourcing.persistence import OperationalError
from fastapi import FastAPI
from pydantic import BaseModel

from api import problems
from domain.errors import IdempotencyKeyReused, IllegalTransition, InvalidInput, OrderNotFound


class Body(BaseModel):
    card: int


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    def boom() -> None:
        raise error

    @app.post("/echo")
    def echo(body: Body) -> None:
        return None

    return app


def call(
    app: FastAPI, method: str = "GET", path: str = "/boom", **kwargs: object
) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)  # type: ignore[arg-type]

    # A fresh thread has no running loop, even when a session fixture (Playwright's sync API,
    # say) keeps one running in the main thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, go()).result()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (OrderNotFound("no such payment order"), 404),
        (IllegalTransition("a failed order cannot be captured"), 409),
        (IdempotencyKeyReused("reused", field="Idempotency-Key"), 422),
        (InvalidInput("must be positive", field="amount"), 422),
        (OperationalError("connection refused"), 503),
        (psycopg.errors.AdminShutdown("terminating connection"), 503),
        (psycopg.OperationalError("server closed the connection"), 503),
        (sqlite3.OperationalError("database is locked"), 503),
        (RuntimeError("a bug"), 500),
    ],
)
def test_errors_become_problems(error: Exception, status: int) -> None:
    response = call(app_raising(error))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text and "a bug" not in response.text
    if status == 503:
        assert response.headers["Retry-After"] == "1"


def test_validation_errors_name_the_field_and_never_echo_the_input() -> None:
    response = call(
        app_raising(RuntimeError()), "POST", "/echo", json={"card": "4242 4242 4242 4242 x"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "card"
    assert "4242" not in response.text
