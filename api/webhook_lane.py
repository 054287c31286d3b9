"""The PSP webhooks' fast lane: `POST /v1/webhooks/psp` and `/v1/webhooks/stripe` handed to
the route's own code before FastAPI's routing.

Every payment brings its PSP's webhook, and a third of the cost of one was FastAPI's
routing, dependency solving and response validation around a route that takes nothing
from FastAPI but the request (issue 13). This layer runs that route's code
(`api.routes.webhooks.apply_notification`) for a plain POST to either path (no query
string), which verifies the signature before it parses anything, exactly as the route
does, and answers with the acknowledgement serialized as FastAPI serializes it. An
exception from that code is answered by the app's own handler for it. Anything else goes
on to FastAPI untouched.
"""

from __future__ import annotations

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.lanes import handled
from api.routes.webhooks import WebhookAck, apply_notification
from app.application import PaymentsApp

CONNECTORS = {"/v1/webhooks/psp": "psp", "/v1/webhooks/stripe": "stripe"}
ACK = TypeAdapter(WebhookAck)
"""FastAPI's view of the routes' return type, used the way it serializes a response."""


class WebhookLane:
    """ASGI middleware: the fast lane in front of the app (see the module's docstring)."""

    def __init__(self, app: ASGIApp, payments: PaymentsApp) -> None:
        self.app = app
        self.payments = payments

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connector = _plain_webhook(scope)
        if connector is None:
            await self.app(scope, receive, send)
            return
        try:
            ack = await apply_notification(Request(scope, receive), self.payments, connector)
            response = Response(ACK.dump_json(ack), media_type="application/json")
        except Exception as error:
            response = await handled(scope, receive, error)
        await response(scope, receive, send)


def _plain_webhook(scope: Scope) -> str | None:
    """The connector a plain webhook POST is for, else None."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]:
        return None
    if scope.get("root_path") or scope.get("app_root_path"):
        return None
    return CONNECTORS.get(scope["path"])
