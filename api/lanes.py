"""What the fast lanes share (the API's checkout and webhooks, the simulator's payment).

A lane may read a body to decide whether it answers the request itself; when it does not,
the app behind it must receive the very messages it would have received. And when the
route's code a lane runs raises, the answer must be the one the app gives for it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope


async def read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The request's body, and any message that was not part of it (a disconnect)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), [message]
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), []


def replay(body: bytes, more: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives the body already read, then what came after it: a body cut
    short by a disconnect stays unfinished, as the route would have seen it."""
    cut = bool(more)
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": cut}, *more]

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


async def handled(scope: Scope, receive: Receive, error: Exception) -> Response:
    """The app's answer to an exception from a route's code run by a lane: its handler's
    response, or (for an unexpected error) the exception again, for ServerErrorMiddleware
    to answer as it answers one from a route."""
    handler = _handler(scope, error)
    if handler is None:
        raise error
    answered = handler(Request(scope, receive), error)
    response: Response = await answered if inspect.isawaitable(answered) else answered
    return response


def _handler(scope: Scope, error: Exception) -> Callable[[Request, Exception], Any] | None:
    """The app's handler for `error`, as Starlette's ExceptionMiddleware finds it (the
    closest class in its MRO), leaving `Exception` itself to ServerErrorMiddleware."""
    handlers: dict[Any, Callable[[Request, Exception], Any]] = scope["app"].exception_handlers
    for kind in type(error).__mro__:
        if kind is Exception:
            return None
        if kind in handlers:
            return handlers[kind]
    return None
