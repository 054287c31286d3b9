"""A PSP port decorator that counts every call's outcome and times it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from prometheus_client import Counter, Histogram

from domain.psp import (
    AuthorizeRequest,
    FollowUpRequest,
    Inquiry,
    PSPOutage,
    PSPPort,
    PSPRejected,
    PSPResult,
)

R = TypeVar("R")


class MeteredPSP(PSPPort):
    """Wraps another PSP port; outcomes are the result status or the outage's code."""

    def __init__(self, inner: PSPPort, calls: Counter, seconds: Histogram) -> None:
        self.inner = inner
        self.calls = calls
        self.seconds = seconds

    def prepare(self, request: AuthorizeRequest) -> str | None:
        return self.inner.prepare(request)

    def authorize(self, request: AuthorizeRequest) -> PSPResult:
        return self._measure("authorize", lambda: self.inner.authorize(request))

    @property
    def asynchronous(self) -> bool:  # type: ignore[override]
        return self.inner.asynchronous

    async def authorize_async(self, request: AuthorizeRequest) -> PSPResult:
        started = time.monotonic()
        outcome = "error"
        try:
            result = await self.inner.authorize_async(request)
            outcome = result.status.value
            return result
        except (PSPOutage, PSPRejected) as error:
            outcome = _outcome(error)
            raise
        finally:
            self._count("authorize", outcome, started)

    def capture(self, request: FollowUpRequest) -> PSPResult:
        return self._measure("capture", lambda: self.inner.capture(request))

    def void(self, request: FollowUpRequest) -> PSPResult:
        return self._measure("void", lambda: self.inner.void(request))

    def refund(self, request: FollowUpRequest) -> PSPResult:
        return self._measure("refund", lambda: self.inner.refund(request))

    def inquire(self, inquiry: Inquiry) -> PSPResult | None:
        return self._measure("inquire", lambda: self.inner.inquire(inquiry))

    def call_of(self, psp_reference: str) -> tuple[UUID, str, int] | None:
        return self._measure("call_of", lambda: self.inner.call_of(psp_reference))

    def _measure(self, operation: str, call: Callable[[], R]) -> R:
        started = time.monotonic()
        outcome = "error"
        try:
            result = call()
            outcome = result.status.value if isinstance(result, PSPResult) else "not_found"
            return result
        except (PSPOutage, PSPRejected) as error:
            outcome = _outcome(error)
            raise
        finally:
            self._count(operation, outcome, started)

    def _count(self, operation: str, outcome: str, started: float) -> None:
        self.calls.labels(operation, outcome).inc()
        self.seconds.labels(operation).observe(time.monotonic() - started)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close:
            close()

    async def close_async(self) -> None:
        close = getattr(self.inner, "close_async", None)
        if close:
            await close()


def _outcome(error: PSPOutage | PSPRejected) -> str:
    return error.code if isinstance(error, PSPOutage) else "rejected"
