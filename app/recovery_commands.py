"""The recovery worker's commands: each a thin get -> act -> save over the application.

PSP calls go through PaymentsApp.send, so the write-ahead rule holds for them too: a resend,
void, refund or capture is recorded as requested before the PSP hears of it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from uuid import UUID

from app.application import PaymentsApp, Written
from domain.calls import CallKind, PspCall, Purpose
from domain.order import PaymentOrder
from domain.psp import PSPOutage, PSPResult


class RecoveryCommands:
    """What the recovery worker may do to an order."""

    def __init__(self, app: PaymentsApp) -> None:
        self.app = app

    def inquire(self, order_id: UUID, kind: CallKind, number: int) -> Written:
        """Ask the PSP what became of a call, record it, and resend if it never arrived."""
        order = self.app.get_order(order_id)
        call = order.call(kind, number)
        if not (call.in_flight or call.awaits_reconciliation):
            return Written(order)
        seen = call.inquiries
        try:
            found = self.app.psp.inquire(self.app.inquiry(order, call))
        except PSPOutage as outage:
            return self.app.change(order_id, partial(self._inquiry_failed, kind, number, outage))
        written = self.app.change(
            order_id, partial(self._record_inquiry, kind, number, seen, found)
        )
        return self.resend(order_id, kind, number) if written.result is True else written

    def _record_inquiry(
        self, kind: CallKind, number: int, seen: int, found: PSPResult | None, order: PaymentOrder
    ) -> bool:
        """Record what the inquiry found; True when the call should be resent at once. If
        another worker's inquiry about the call was recorded since we looked, that one counts
        (one inquiry against the budget, not two); ours only adds an outcome it reveals."""
        call = order.call(kind, number)
        if call.awaiting_buyer and found is not None:
            order.end_session_if_over(self.app.clock())
        if call.inquiries > seen:
            if found is not None:
                order.record_result(kind, number, found)
                if call.awaiting_buyer:  # a challenge learnt here is asked about later too
                    self.app.recovery.plan(order, call, self.app.clock())
            return False
        return self.app.recovery.after_inquiry(order, call, found, self.app.clock())

    def _inquiry_failed(
        self, kind: CallKind, number: int, outage: PSPOutage, order: PaymentOrder
    ) -> None:
        self.app.recovery.after_failed_inquiry(
            order, order.call(kind, number), outage, self.app.clock()
        )

    def resend(self, order_id: UUID, kind: CallKind, number: int) -> Written:
        """Send again, with the same PSP key, a call known not to have been processed."""
        return self._start(order_id, lambda o: o.resend(kind, number, self.app.clock()))

    def expire(self, order_id: UUID) -> Written:
        """Close a checkout whose session ended without success."""
        return self.app.change(order_id, lambda o: o.expire(self.app.clock()))

    def lapse(self, order_id: UUID) -> Written:
        """Record that the PSP's hold lapsed uncaptured (a void follows, as compensation)."""
        return self.app.change(order_id, lambda o: o.lapse_hold(self.app.clock()))

    def void_unused(self, order_id: UUID, attempt: int) -> Written:
        """Compensate: release an authorization the order will never capture."""
        return self._start(order_id, lambda o: o.request_void(attempt, self.app.clock()))

    def refund_unused(self, order_id: UUID) -> Written:
        """Compensate: give back money captured for an order that closed without it."""

        def refund_rest(order: PaymentOrder) -> PspCall:
            rest = order.refundable_amount
            return order.request_refund(rest, self.app.clock(), Purpose.COMPENSATION)

        return self._start(order_id, refund_rest)

    def finish_capture(self, order_id: UUID) -> Written:
        """An automatic-capture order the PSP only authorized: capture it now."""
        return self._start(
            order_id, lambda o: o.request_capture(None, self.app.clock(), Purpose.AUTO_CAPTURE)
        )

    def _start(self, order_id: UUID, command: Callable[[PaymentOrder], PspCall]) -> Written:
        """Record a call's write-ahead event, then send it (get -> act -> save -> call)."""
        written = self.app.change(order_id, command)
        if not isinstance(written.result, PspCall):  # pragma: no cover - commands return one
            raise TypeError(f"{command} started no PSP call")
        return self.app.send(written.order, written.result)
