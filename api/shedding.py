"""Overload: past what the process can serve, a fast 503 instead of an ever longer queue.

Every API request counts while it is in progress; when `limit` are, the next one is refused
at once with `503` problem+json `overloaded` and `Retry-After`, before its body is read or
anything is recorded, so a shed request is never half-done and the requests already
accepted keep their pace. Health, metrics and the operators' pages are never shed.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import Problem, problem_response

SHED_PREFIXES = ("/v1/", "/status/")
NEVER_SHED = ("/v1/webhooks/",)
"""PSP notifications: senders give up after a few tries, and a lost one costs an inquiry."""
RETRY_AFTER_S = 1


class LoadShedder:
    """At most `limit` API requests in progress in this process (0: no limit)."""

    def __init__(self, app: ASGIApp, limit: int, on_shed: Callable[[], None] = lambda: None):
        self.app = app
        self.limit = limit
        self.in_flight = 0
        self.shed = 0
        """Requests refused since the process started."""
        self.on_shed = on_shed
        """Told of each refusal (the `payments_requests_shed_total` counter)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        exempt = not path.startswith(SHED_PREFIXES) or path.startswith(NEVER_SHED)
        if scope["type"] != "http" or not self.limit or exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.shed += 1
            self.on_shed()
            detail = f"the service is at capacity; retry after {RETRY_AFTER_S} s"
            headers = {"Retry-After": str(RETRY_AFTER_S)}
            await problem_response(Problem(503, "overloaded", detail, headers=headers))(
                scope, receive, send
            )
            return
        self.in_flight += 1  # one event loop per process: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
