"""Fakes of the application's ports: an in-memory PSP and a pinned clock."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from domain.psp import (
    AuthorizeRequest,
    FollowUpRequest,
    Inquiry,
    PSPOutage,
    PSPPort,
    PSPResult,
    PSPStatus,
)


@dataclass
class FakePSP(PSPPort):
    """Answers success unless told otherwise; remembers every call and key."""

    outages: deque[PSPOutage] = field(default_factory=deque)
    calls: list[tuple[str, str]] = field(default_factory=list)
    done: dict[str, PSPResult] = field(default_factory=dict)

    def authorize(self, request: AuthorizeRequest) -> PSPResult:
        declined = request.payment_method == "pm_card_declined"
        status = (
            PSPStatus.DECLINED
            if declined
            else (PSPStatus.CAPTURED if request.capture else PSPStatus.AUTHORIZED)
        )
        code = "card_declined" if declined else None
        return self._answer("authorize", request.idempotency_key, status, request.amount, code)

    def capture(self, request: FollowUpRequest) -> PSPResult:
        return self._answer("capture", request.idempotency_key, PSPStatus.CAPTURED, request.amount)

    def void(self, request: FollowUpRequest) -> PSPResult:
        return self._answer("void", request.idempotency_key, PSPStatus.VOIDED, request.amount)

    def refund(self, request: FollowUpRequest) -> PSPResult:
        return self._answer("refund", request.idempotency_key, PSPStatus.REFUNDED, request.amount)

    def inquire(self, inquiry: Inquiry) -> PSPResult | None:
        self.calls.append(("inquire", inquiry.idempotency_key))
        return self.done.get(inquiry.idempotency_key)

    def _answer(
        self, op: str, key: str, status: PSPStatus, amount: int, code: str | None = None
    ) -> PSPResult:
        self.calls.append((op, key))
        result = self.done.setdefault(
            key, PSPResult(f"pay_{len(self.done)}", status, amount, "EUR", code)
        )
        if self.outages:
            raise self.outages.popleft()
        return result


@dataclass
class FakeClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now
