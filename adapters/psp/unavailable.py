"""A PSP port for processes that must never call the PSP (migrations, projections)."""

from __future__ import annotations

from domain.psp import (
    AuthorizeRequest,
    FollowUpRequest,
    Inquiry,
    PSPPort,
    PSPResult,
    PSPUnavailable,
)


class NoPSP(PSPPort):
    """Refuses every call as 'not processed', so a mistaken call is safe and visible."""

    def _refuse(self) -> PSPResult:
        raise PSPUnavailable("this process has no PSP connection")

    def authorize(self, request: AuthorizeRequest) -> PSPResult:
        return self._refuse()

    def capture(self, request: FollowUpRequest) -> PSPResult:
        return self._refuse()

    def void(self, request: FollowUpRequest) -> PSPResult:
        return self._refuse()

    def refund(self, request: FollowUpRequest) -> PSPResult:
        return self._refuse()

    def inquire(self, inquiry: Inquiry) -> PSPResult | None:
        return self._refuse()
