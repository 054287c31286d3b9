"""The simulator's fast lane: `POST /v1/payments` answered before FastAPI's routing.

Under checkout load the simulator takes a charge for every checkout, and most of that cost
was FastAPI's routing, dependencies and body handling around a few lines of simulation
(issue 13: the simulator must not be what a load test measures). This layer answers only
the plain request: a JSON body that `PaymentIn` accepts, one `Idempotency-Key` of 1-255
characters, no query string. It runs the route's own code (`Simulator.charge`), faults
included, and sends the very response object the route would return. Anything else goes on
to FastAPI with its body intact, which answers as it always has (its 422s, for one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.lanes import read_body, replay

PATH = "/v1/payments"
PLAIN_HOST = re.compile(rb"[A-Za-z0-9.-]+(?::([0-9]{1,5}))?")
"""A host name or IPv4 address, with a port Starlette takes if it is at most 65535; any other
Host header (IPv6, brackets, other characters) goes through Starlette's own rules."""
KEY_HEADER = b"idempotency-key"
Charge = Callable[[dict[str, Any], str, str], Awaitable[Response]]
"""`Simulator.charge`: (the validated body, the idempotency key, the base URL) -> response."""


class PaymentsLane:
    """ASGI middleware: the fast lane in front of the simulator (see the module's docstring)."""

    def __init__(self, app: ASGIApp, charge: Charge, model: type[BaseModel]) -> None:
        self.app = app
        self.charge = charge
        self.model = model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _plain_payment(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        body, more = await read_body(receive)
        payment = None if more else _payment(self.model, body)
        if payment is None:
            await self.app(scope, replay(body, more, receive), send)
            return
        response = await self.charge(payment, key, _base_url(scope))
        await response(scope, receive, send)


def _plain_payment(scope: Scope) -> str | None:
    """The idempotency key of a plain `POST /v1/payments` with a JSON body, else None."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
        return None
    if scope["query_string"] or scope.get("root_path") or scope.get("app_root_path"):
        return None
    keys, types = [], []
    for name, value in scope["headers"]:
        if name == KEY_HEADER:
            keys.append(value)
        elif name == b"content-type":
            types.append(value)
    if len(keys) != 1 or types != [b"application/json"]:
        return None
    key: str = keys[0].decode("latin-1")  # as Starlette reads headers
    return key if 1 <= len(key) <= 255 else None


def _payment(model: type[BaseModel], body: bytes) -> dict[str, Any] | None:
    """The route's view of the body (FastAPI parses with `json`, then validates), or None
    for anything it would refuse."""
    try:
        parsed = json.loads(body)
        return model.model_validate(parsed).model_dump(exclude_none=True)
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError included
        return None


def _base_url(scope: Scope) -> str:
    """What the route's `str(request.base_url).rstrip("/")` gives: for a plain Host header
    (a name or address and a port), the scheme and that host, without building Starlette's
    URL objects; for anything else, Starlette's own answer."""
    host = next((v for n, v in scope["headers"] if n == b"host"), None)
    plain = PLAIN_HOST.fullmatch(host) if host is not None else None
    if plain and (plain[1] is None or int(plain[1]) <= 65535):
        return f"{scope.get('scheme', 'http')}://{plain[0].decode('latin-1')}"
    return str(Request(scope).base_url).rstrip("/")
