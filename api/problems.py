"""RFC 9457 problem details: every error is application/problem+json, naming the field."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, cast

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.db import STORE_ERRORS
from domain.errors import (
    ConcurrentChange,
    DomainError,
    IdempotencyKeyReused,
    IllegalTransition,
    OrderNotFound,
)

MEDIA_TYPE = "application/problem+json"
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, sqlite3.OperationalError)
log = logging.getLogger("payments.api")


class FieldError(BaseModel):
    field: str
    message: str


class ProblemOut(BaseModel):
    """The body of every error response."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class Problem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.errors = list(errors)
        self.headers = headers or {}


def invalid(field: str, message: str) -> Problem:
    """A 422 naming one field."""
    error = FieldError(field=field, message=message)
    return Problem(422, "validation-error", f"{field}: {message}", errors=[error])


def problem_response(problem: Problem) -> JSONResponse:
    body = ProblemOut(
        type=f"/problems/{problem.code}",
        title=HTTPStatus(problem.status).phrase,
        status=problem.status,
        detail=problem.detail,
        errors=problem.errors or None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=problem.headers,
    )


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problem responses a route can give (api/openapi.py documents their body)."""
    return {status: {"description": HTTPStatus(status).phrase} for status in statuses}


DOMAIN_STATUS: list[tuple[type[DomainError], int]] = [
    (OrderNotFound, 404),
    (IdempotencyKeyReused, 422),
    (IllegalTransition, 409),
    (ConcurrentChange, 409),
    (DomainError, 422),
]


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into a problem document."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(PersistenceError, _on_database_error)
    for store_error in STORE_ERRORS:  # the read side's own connections
        app.add_exception_handler(store_error, _on_database_error)
    app.add_exception_handler(Exception, _on_unexpected)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(Problem, exc)
    return problem_response(exc)


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(DomainError, exc)
    status = next(code for kind, code in DOMAIN_STATUS if isinstance(exc, kind))
    errors = [FieldError(field=exc.field, message=exc.message)] if exc.field else []
    return problem_response(Problem(status, exc.code, exc.message, errors=errors))


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    errors = [_field_error(e) for e in exc.errors()]
    kinds = {e.get("type") for e in exc.errors()}
    if any(e.field == "Idempotency-Key" for e in errors):
        detail = "send an Idempotency-Key header of 1 to 255 printable ASCII characters"
        return problem_response(Problem(400, "invalid-idempotency-key", detail, errors=errors))
    if "json_invalid" in kinds:
        return problem_response(
            Problem(400, "malformed-json", "the body is not valid JSON", errors=errors)
        )
    first = errors[0] if errors else FieldError(field="body", message="invalid")
    detail = f"{first.field}: {first.message}"
    return problem_response(Problem(422, "validation-error", detail, errors=errors))


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
    headers = dict(exc.headers or {})
    return problem_response(Problem(exc.status_code, code, str(exc.detail), headers=headers))


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", type(exc).__name__)
    detail = "the database is unavailable; nothing was recorded twice, retry with the same key"
    if not isinstance(exc, (OperationalError, InterfaceError, *_CONNECTION_ERRORS)):
        log.error("database error", exc_info=exc)
    return problem_response(
        Problem(503, "database-unavailable", detail, headers={"Retry-After": "1"})
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(Problem(500, "internal-error", "an unexpected error occurred"))


def _field_error(error: Any) -> FieldError:
    """A pydantic error as `field` + `message`, never echoing the input (it may be secret)."""
    if error.get("type") == "json_invalid":
        return FieldError(field="body", message="not valid JSON")
    location = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
    if location and location[0] == "header":
        field = (
            "-".join(w.capitalize() for w in location[1].split("-")) if len(location) > 1 else ""
        )
        field = "Idempotency-Key" if field.lower() == "idempotency-key" else field
    else:
        field = _dotted(location) or "body"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return FieldError(field=field, message=message)


def _dotted(location: list[str]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text
