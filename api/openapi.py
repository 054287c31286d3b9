"""The OpenAPI document as clients should read it: errors are problem+json, auth is bearer."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.problems import MEDIA_TYPE, ProblemOut

PROBLEM_REF = {"$ref": "#/components/schemas/ProblemOut"}


def install(app: FastAPI) -> None:
    """Replace FastAPI's generator with one that documents our error format."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem = ProblemOut.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["ProblemOut"] = problem
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            _problems_everywhere(
                operation, secured=path.startswith("/v1/") and "webhooks" not in path
            )
    return schema


def _problems_everywhere(operation: dict[str, Any], *, secured: bool) -> None:
    responses = operation.setdefault("responses", {})
    responses.setdefault(
        "400", {"description": "Bad Request: text or numbers that cannot be stored (api/limits.py)"}
    )
    for status, response in operation.get("responses", {}).items():
        if status[0] in "45":
            response["content"] = {MEDIA_TYPE: {"schema": PROBLEM_REF}}
    if secured:
        operation["security"] = [{"bearer": []}]
