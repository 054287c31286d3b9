"""A PSP port decorator that counts every call's outcome and times it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
        with self._metered("authorize") as seen:
            return seen(await self.inner.authorize_async(request))

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
        with self._metered(operation) as seen:
            return seen(call())

    @contextmanager
    def _metered(self, operation: str) -> Iterator[Callable[[R], R]]:
        """Counts and times one call: the body passes its result through `seen`; an outage
        or a refusal is counted by its kind, anything else as `error`."""
        started = time.monotonic()
        outcome = "error"

        def seen(result: R) -> R:
            nonlocal outcome
            outcome = result.status.value if isinstance(result, PSPResult) else "not_found"
            return result

        try:
            yield seen
        except (PSPOutage, PSPRejected) as error:
            outcome = error.code if isinstance(error, PSPOutage) else "rejected"
            raise
        finally:
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
