"""The PSP adapter over HTTP (httpx): our ids in, a frozen PSPResult out.

It tells apart what matters for safety: a decline (a result), a refusal that surely
processed nothing (connection refused, 503 marked not-processed, 429), and everything
whose outcome is unknown (timeouts, dropped connections, other 5xx), which must be
inquired before anything is sent again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx
import orjson

from domain.inputs import ascii_int, unstorable
from domain.money import MAX_AMOUNT
from domain.psp import (
    AuthorizeRequest,
    FollowUpRequest,
    Inquiry,
    PSPConnectionLost,
    PSPPort,
    PSPRateLimited,
    PSPRejected,
    PSPResult,
    PSPServerError,
    PSPStatus,
    PSPTimeout,
    PSPUnavailable,
)


def map_status(status: str) -> PSPStatus:
    """The one place a PSP status string becomes ours (partial refunds are refunds)."""
    if status == "partially_refunded":
        return PSPStatus.REFUNDED
    return PSPStatus(status)


class HttpPSP(PSPPort):
    """Talks to a PSP that speaks the simulator's contract: httpx for the worker's threads,
    and aiohttp for checkouts on the server's event loop (`authorize_async`), where an
    httpx.AsyncClient request costs four times the CPU."""

    asynchronous = True

    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        *,
        max_connections: int = 100,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0)),
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,
        )
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 3.0))
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    def close(self) -> None:
        self._client.close()

    async def close_async(self) -> None:
        session, self._session, self._session_loop = self._session, None, None
        if session is not None:
            await session.close()

    def authorize(self, request: AuthorizeRequest) -> PSPResult:
        return self._post("/v1/payments", _authorize_body(request), request.idempotency_key)

    async def authorize_async(self, request: AuthorizeRequest) -> PSPResult:
        """One POST on the running loop's session; failures classed as `_send` does."""
        session = self._session_for(asyncio.get_running_loop())
        headers = {"Idempotency-Key": request.idempotency_key, "Content-Type": "application/json"}
        data = orjson.dumps(_authorize_body(request))
        try:
            async with session.post(
                self._base_url + "/v1/payments", data=data, headers=headers
            ) as response:
                content = await response.read()
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as error:
            raise PSPUnavailable(f"could not reach the PSP: {type(error).__name__}") from error
        except TimeoutError as error:
            raise PSPTimeout(f"the PSP did not answer in time: {type(error).__name__}") from error
        except aiohttp.ClientError as error:
            raise PSPConnectionLost(f"the connection dropped: {type(error).__name__}") from error
        return _result(_checked(response.status, response.headers, content))

    def _session_for(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        """One session per event loop (a server process has one), made on first use."""
        if self._session is None or self._session_loop is not loop:
            # No limit here: the API's in-flight bound caps the calls. Idle connections are
            # dropped before uvicorn's 5 s keep-alive ends, so a POST never meets a closed one.
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=4.0)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=False
            )
            self._session_loop = loop
        return self._session

    def capture(self, request: FollowUpRequest) -> PSPResult:
        path = f"/v1/payments/{request.psp_reference}/capture"
        return self._post(path, {"amount": request.amount}, request.idempotency_key)

    def void(self, request: FollowUpRequest) -> PSPResult:
        return self._post(f"/v1/payments/{request.psp_reference}/void", {}, request.idempotency_key)

    def refund(self, request: FollowUpRequest) -> PSPResult:
        path = f"/v1/payments/{request.psp_reference}/refunds"
        return self._post(path, {"amount": request.amount}, request.idempotency_key)

    def inquire(self, inquiry: Inquiry) -> PSPResult | None:
        key = inquiry.idempotency_key
        response = self._send("GET", "/v1/payments", params={"idempotency_key": key})
        if response.status_code == 404:
            return None
        return _result(_checked(response.status_code, response.headers, response.content))

    def _post(self, path: str, body: dict[str, Any], key: str) -> PSPResult:
        response = self._send("POST", path, json=body, headers={"Idempotency-Key": key})
        return _result(_checked(response.status_code, response.headers, response.content))

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise PSPUnavailable(f"could not reach the PSP: {type(error).__name__}") from error
        except httpx.TimeoutException as error:
            raise PSPTimeout(f"the PSP did not answer in time: {type(error).__name__}") from error
        except httpx.HTTPError as error:
            raise PSPConnectionLost(f"the connection dropped: {type(error).__name__}") from error


def _authorize_body(request: AuthorizeRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount": request.amount,
        "currency": request.currency,
        "payment_method": request.payment_method,
        "capture": request.capture,
        "reference": request.reference,
    }
    if request.return_url:
        body["return_url"] = request.return_url
    return body


def _checked(status: int, headers: Mapping[str, str], content: bytes) -> dict[str, Any]:
    """The JSON body of a 2xx, or the exception that says what kind of failure it was."""
    body = _json(content)
    if status < 300:
        if isinstance(body, dict):
            return body
        raise PSPServerError("the PSP answered with a malformed body", status_code=status)
    if status == 429:
        raise PSPRateLimited("the PSP is rate limiting", retry_after_s=_retry_after(headers))
    error = body.get("error", {}) if isinstance(body, dict) else {}
    error = error if isinstance(error, dict) else {}
    if status >= 500 and error.get("processed") is False:
        raise PSPUnavailable(f"HTTP {status}: {_said(error.get('type', 'unavailable'))}")
    if status >= 500:
        raise PSPServerError(
            f"HTTP {status}: {_said(error.get('type', 'error'))}", status_code=status
        )
    raise PSPRejected(
        f"{_said(error.get('type', 'rejected'))}: {_said(error.get('message', ''))}",
        status_code=status,
    )


def _result(body: dict[str, Any]) -> PSPResult:
    """A 2xx body as a result. Anything we could not store faithfully (text with NUL or
    unpaired surrogates, an amount beyond money's range, a field of the wrong type) makes it
    a malformed answer: an outage whose outcome is unknown, settled later by inquiry."""
    try:
        amount = body["amount"]
        if type(amount) is not int or not 0 <= amount <= MAX_AMOUNT:
            raise ValueError("amount")
        return PSPResult(
            psp_reference=_field(body["id"], 255),
            status=map_status(_field(body["status"], 32)),
            amount=amount,
            currency=_field(body["currency"], 3),
            decline_code=_optional(body.get("decline_code"), 100),
            decline_message=_optional(body.get("decline_message"), 500),
            action_url=_action_url(body),
            authorization_expires_at=_moment(body.get("authorization_expires_at")),
        )
    except (KeyError, ValueError, TypeError) as error:
        raise PSPServerError("the PSP answered with a malformed body", status_code=200) from error


def _moment(value: object) -> datetime | None:
    """A unix time in seconds (within what a datetime holds), or None."""
    if value is None:
        return None
    if type(value) is not int or not 0 < value < 253_402_300_800:  # before year 10000
        raise ValueError("not a unix time")
    return datetime.fromtimestamp(value, UTC)


def _action_url(body: dict[str, Any]) -> str | None:
    """The challenge page of a `requires_action` answer (an http(s) URL we can store)."""
    if body.get("status") != "requires_action":
        return None
    next_action = body.get("next_action")
    if not isinstance(next_action, dict):
        raise ValueError("requires_action without a next_action")
    url = _field(next_action.get("url"), 2000)
    if not url.startswith(("https://", "http://")):
        raise ValueError("next_action.url is not an http(s) URL")
    return url


def _field(value: object, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or unstorable(value):
        raise ValueError("not a storable text field")
    return value


def _optional(value: object, limit: int) -> str | None:
    return None if value is None else _field(value, limit)


def _said(value: object) -> str:
    """Text from a PSP error body for our messages: storable, short, or a placeholder."""
    return value[:200] if isinstance(value, str) and not unstorable(value) else "?"


def _json(content: bytes) -> object:
    """The parsed body, or None when it is not JSON (or not UTF-8)."""
    try:
        return json.loads(content)
    except ValueError:
        return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After", "")
    seconds = ascii_int(value, high=86_400)
    return float(seconds) if seconds is not None else None
