"""The fault engine over HTTP, shared by the PSP simulator and the PSP proxy.

psp/faults.py draws the faults; this module turns a drawn fault into what the client sees
(refusals, hangs, dropped connections, 5xx after processing) and serves the control API
(`PUT`/`GET /_control/faults`, `POST /_control/reset`) of whatever holds the fault plan.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from psp.faults import Fault, FaultPlan, FaultSettings


class DroppedResponse(Response):
    """Starts a response, sends part of it, and ends: the client sees the connection drop."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"id": "pay_', "more_body": True})


class FaultHost(Protocol):
    """What the control routes need: the fault plan, extra counters, and a reset."""

    plan: FaultPlan

    def counters(self) -> dict[str, int]:
        """Counters reported next to the injected faults."""
        ...

    def reset(self) -> None:
        """Forget the faults (and whatever else the host resets)."""
        ...


async def refuse_before(settings: FaultSettings, fault: Fault) -> Response | None:
    """Wait `latency_ms`; then the refusal for a fault that processes nothing, or None."""
    await asyncio.sleep(settings.latency_ms / 1000)
    if fault in ("rate_limit", "error_before"):
        return refusal(fault, settings.retry_after_s)
    return None


async def spoil_after(settings: FaultSettings, fault: Fault, answer: Response) -> Response:
    """The answer to a processed request, as the fault drawn for it lets the client see it."""
    if fault == "timeout":
        await asyncio.sleep(settings.hang_ms / 1000)
    elif fault == "lost_response":
        return DroppedResponse()
    elif fault == "error_after":
        return error_response(500, "internal_error", "something went wrong")
    return answer


def refusal(fault: str, retry_after_s: int) -> Response:
    """A 429 with `Retry-After` for `rate_limit`, otherwise a 503; nothing was processed."""
    if fault == "rate_limit":
        response = error_response(429, "rate_limited", "too many requests")
        response.headers["Retry-After"] = str(retry_after_s)
        return response
    return error_response(503, "unavailable", "temporarily unavailable; nothing was processed")


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """The simulator's error body; `processed` is false only for 429 and 503."""
    processed = False if status in (429, 503) else None
    body = {"error": {"type": code, "message": message, "processed": processed}}
    return JSONResponse(body, status_code=status)


def fault_control_routes(app: FastAPI, host: FaultHost) -> None:
    """`PUT`/`GET /_control/faults` and `POST /_control/reset` for `host`."""

    @app.put("/_control/faults")
    async def set_faults(settings: FaultSettings) -> dict[str, Any]:
        host.plan = FaultPlan(settings, injected=host.plan.injected)
        return settings.model_dump()

    @app.get("/_control/faults")
    async def get_faults() -> dict[str, Any]:
        injected = dict(host.plan.injected) | host.counters()
        return {"settings": host.plan.settings.model_dump(), "injected": injected}

    @app.post("/_control/reset")
    async def reset() -> dict[str, str]:
        host.reset()
        return {"status": "reset"}
