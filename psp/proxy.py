"""The simulator's fault engine as a reverse proxy in front of any PSP (`payments psp-proxy`).

Every request but `/_control/*` and the proxy's own `GET /healthz` is forwarded to the
upstream (same method, path, query string, body and end-to-end headers) and its answer is
returned as it came (status, headers, raw body), unless the fault plan spoils it:

- `error_before` / `rate_limit`: a 503 / a 429 with `Retry-After`, and nothing is forwarded;
- `timeout`: forwarded, then the answer waits `hang_ms` (the upstream did process it);
- `lost_response`: forwarded, then the connection drops mid-body;
- `error_after`: forwarded, then a 500 instead of the upstream's answer;
- `latency_ms`: before every proxied request.

GET requests are inquiries (`faults_on_inquiries`, and no faults after processing for them);
any other method is a payment request. The control API is the simulator's: `PUT` and
`GET /_control/faults` (same FaultSettings body and report; the report counts `forwarded`
requests next to the injected faults) and `POST /_control/reset`, which resets the faults
and the counters and never touches the upstream. The simulator-only settings
(`amount_mismatch_rate`, `duplicate_webhook_rate`, `webhook_delay_ms`,
`processing_delay_ms`, `webhook_events`) are accepted and ignored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response

from psp.fault_http import error_response, fault_control_routes, refuse_before, spoil_after
from psp.faults import FaultPlan, FaultSettings

UPSTREAM_TIMEOUT_S = 120.0
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {b"host", b"content-length"}


class Proxy:
    """The fault plan, the upstream client and the counters, shared by the proxy's routes."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.plan = FaultPlan(FaultSettings())
        self.forwarded = 0
        self._client: httpx.AsyncClient | None = None

    def counters(self) -> dict[str, int]:
        """Reported by `GET /_control/faults` next to the injected faults."""
        return {"forwarded": self.forwarded}

    def reset(self) -> None:
        """`POST /_control/reset`: forget the faults and the counters."""
        self.plan = FaultPlan(FaultSettings())
        self.forwarded = 0

    async def handle(self, request: Request) -> Response:
        """Run one request through the fault plan, forwarding it unless refused."""
        fault = self.plan.next_fault(inquiry=request.method == "GET")
        settings = self.plan.settings
        refused = await refuse_before(settings, fault)
        if refused is not None:
            return refused
        try:
            answer = await self.forward(request)
        except httpx.HTTPError as error:
            failure = f"the upstream failed: {type(error).__name__}"
            return error_response(502, "bad_gateway", failure)
        return await spoil_after(settings, fault, answer)

    async def forward(self, request: Request) -> Response:
        """Send the request upstream and return its answer, buffered."""
        outgoing = httpx.Request(
            request.method,
            self._url(request),
            headers=_end_to_end(request.headers.raw),
            content=await request.body(),
        )
        self.forwarded += 1
        upstream = await self.client.send(outgoing, stream=True)
        try:
            body = b"".join([chunk async for chunk in upstream.aiter_raw()])
        finally:
            await upstream.aclose()
        answer = Response(content=body, status_code=upstream.status_code)
        answer.raw_headers += _end_to_end(upstream.headers.raw)
        return answer

    @property
    def client(self) -> httpx.AsyncClient:
        """One client (and connection pool), made in the server's event loop."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT_S)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _url(self, request: Request) -> str:
        path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string", b"")
        return self.upstream + path.decode("latin-1") + ("?" + query.decode() if query else "")


def create_proxy(upstream: str) -> FastAPI:
    """The proxy app in front of `upstream` (a base URL such as http://127.0.0.1:8420)."""
    proxy = Proxy(upstream)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await proxy.aclose()

    app = FastAPI(
        title="PSP fault proxy", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.proxy = proxy
    fault_control_routes(app, proxy)
    _own_routes(app, proxy)
    return app


def _own_routes(app: FastAPI, proxy: Proxy) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/{path:path}", methods=METHODS)
    async def forward(request: Request, path: str) -> Response:
        if path == "_control" or path.startswith("_control/"):
            return error_response(404, "not_found", "no such control route on the proxy")
        return await proxy.handle(request)


def _end_to_end(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers without the hop-by-hop ones (also those named by `Connection`), Host and
    Content-Length (recomputed for the new message)."""
    connection = [value for name, value in headers if name.lower() == b"connection"]
    named = {token.strip().lower() for value in connection for token in value.split(b",")}
    dropped = NOT_FORWARDED | named
    return [(name, value) for name, value in headers if name.lower() not in dropped]
