"""The checkout's fast lane: `POST /v1/checkouts` answered before FastAPI's routing.

A checkout is the API's busiest write, and a fifth of an API process's CPU under checkout
load went to FastAPI's routing, dependency solving and exception layers around it (issue
13). This layer takes only the request whose every input the route would accept: one
`Idempotency-Key` of 1-255 printable ASCII characters, at most one `Authorization` header
naming a caller with the checkout role, one `Content-Type: application/json`, no query
string, and a body that `json` parses and `CheckoutIn` validates as FastAPI would. It then
runs the route's own code (`api.routes.checkouts.place`) and sends the response that code
returns. An exception from it is answered by the app's own exception handler for it (an
unexpected one goes on up, to the same handler the route's would reach), so every answer,
errors included, is the route's. Anything else goes on to FastAPI, body intact, before
anything is recorded: the lane changes no behaviour, it only skips work.
"""

from __future__ import annotations

import json
import re

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import caller_for
from api.lanes import handled, read_body, replay
from api.routes.checkouts import place
from api.schemas import CheckoutIn
from bootstrap.composition import Container
from bootstrap.settings import Role

PATH = "/v1/checkouts"
KEY = re.compile(r"[\x21-\x7e]{1,255}")
"""The key `IdempotencyKey` accepts (1 to 255 printable ASCII characters)."""


class CheckoutLane:
    """ASGI middleware: the fast lane in front of the app (see the module's docstring)."""

    def __init__(self, app: ASGIApp, container: Container) -> None:
        self.app = app
        self.container = container

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plain = _plain_checkout(scope)
        if plain is None:
            await self.app(scope, receive, send)
            return
        key, authorization = plain
        caller = caller_for(self.container.settings.keys, authorization)
        if caller is None or Role.CHECKOUT not in caller.roles:
            await self.app(scope, receive, send)  # FastAPI answers 401 or 403
            return
        body, more = await read_body(receive)
        checkout = None if more else _checkout(body)
        if checkout is None:
            await self.app(scope, replay(body, more, receive), send)
            return
        app, settings = self.container.app, self.container.settings
        try:
            response = await place(app, settings, checkout, caller.client_id, key)
        except Exception as error:
            response = await handled(scope, receive, error)
        await response(scope, receive, send)


def _plain_checkout(scope: Scope) -> tuple[str, str | None] | None:
    """(the Idempotency-Key, the Authorization header if any) of a plain checkout request
    with a JSON body, else None."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
        return None
    if scope["query_string"] or scope.get("root_path") or scope.get("app_root_path"):
        return None
    keys, types, authorizations = [], [], []
    for name, value in scope["headers"]:
        if name == b"idempotency-key":
            keys.append(value)
        elif name == b"content-type":
            types.append(value)
        elif name == b"authorization":
            authorizations.append(value)
    if len(keys) != 1 or types != [b"application/json"] or len(authorizations) > 1:
        return None
    key = keys[0].decode("latin-1")  # as Starlette reads headers
    if not KEY.fullmatch(key):
        return None
    return key, authorizations[0].decode("latin-1") if authorizations else None


def _checkout(body: bytes) -> CheckoutIn | None:
    """The route's view of the body (FastAPI parses it with `json`, then validates it in
    Python mode), or None for anything it would refuse."""
    try:
        return CheckoutIn.model_validate(json.loads(body), from_attributes=True)
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError included
        return None
