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
        except PSPOutage as outage:
            outcome = outage.code
            raise
        except PSPRejected:
            outcome = "rejected"
            raise
        finally:
            self.calls.labels(operation, outcome).inc()
            self.seconds.labels(operation).observe(time.monotonic() - started)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close:
            close()
