"""ASGI middlewares at the boundary: bodies over a size limit get 413, unstorable text in
query values, the path or headers gets 400."""

from __future__ import annotations

import contextlib
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import FieldError, Problem, problem_response
from domain.inputs import UNSTORABLE_MESSAGE, unstorable

BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Checks Content-Length up front and counts streamed bytes as they arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODILESS:
            await self.app(scope, receive, send)  # no route of ours reads these bodies
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = too_large = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                too_large = True
                raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return  # the app's own answer to the error (FastAPI's 400): ours is 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, counting_receive, tracking_send)
        if too_large and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body may be at most {self.max_bytes} bytes"
        await problem_response(Problem(413, "body-too-large", detail))(scope, receive, send)


class InputGuard:
    """Refuses, with 400 naming the field, a request whose query values, path or headers
    (cookies included) hold text that cannot be stored (domain.inputs) or is not UTF-8.

    One place for every route's non-body input: a NUL in a cursor or an account name never
    reaches the database (where PostgreSQL would refuse it as a server error)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            field = _unstorable_field(scope)
            if field is not None:
                errors = [FieldError(field=field, message=UNSTORABLE_MESSAGE)]
                detail = f"{field}: {UNSTORABLE_MESSAGE}"
                problem = Problem(400, "invalid-input", detail, errors=errors)
                await problem_response(problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _unstorable_field(scope: Scope) -> str | None:
    if unstorable(scope["path"]):
        return "path"
    for name, value in scope["headers"]:
        if b"\x00" in value:
            return f"header.{name.decode('latin-1')}"
    query: bytes = scope["query_string"]
    if not query:
        return None
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return "query"
    for name, value in pairs:
        if unstorable(name) or unstorable(value):
            return f"query.{name}" if not unstorable(name) else "query"
    return None
