"""Random command sequences never break an invariant of the PaymentOrder aggregate."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.calls import Action, CallKind
from domain.errors import DomainError
from domain.order import RESOLUTIONS, PaymentOrder
from domain.psp import (
    PSPConnectionLost,
    PSPRateLimited,
    PSPResult,
    PSPServerError,
    PSPStatus,
    PSPTimeout,
    PSPUnavailable,
)
from domain.statuses import TERMINAL, AttemptStatus, OrderStatus
from tests.unit.orders import NOW, TTL, placed, state

OUTAGES = [
    PSPTimeout("t"),
    PSPConnectionLost("c"),
    PSPUnavailable("u"),
    PSPRateLimited("r", retry_after_s=1),
    PSPServerError("s", status_code=500),
]
RESOLUTION_OUTCOMES = sorted({o for outcomes in RESOLUTIONS.values() for o in outcomes})
minutes = st.integers(min_value=0, max_value=45).map(lambda m: NOW + timedelta(minutes=m))


class OrderMachine(RuleBasedStateMachine):
    """Drives one order with arbitrary commands; refused commands must change nothing."""

    order: PaymentOrder
    events: list[Any]

    @initialize(manual=st.booleans(), token=st.sampled_from(["pm_card_visa", "pm_card_declined"]))
    def place(self, manual: bool, token: str) -> None:
        self.order = placed("manual" if manual else "automatic", token)
        self.events = list(self.order.collect_events())
        self.previous = self.order.status

    def attempt(self, command: Any, *args: Any, **kwargs: Any) -> None:
        version = self.order.version
        self.previous = self.order.status
        try:
            command(*args, **kwargs)
        except DomainError:
            assert self.order.version == version, "a refused command changed the order"
            assert not self.order.pending_events, "a refused command left events behind"
        new = list(self.order.collect_events())
        note(f"{getattr(command, '__name__', command)}{args} -> {[type(e).__name__ for e in new]}")
        self.events.extend(new)

    def pick(self, data: st.DataObject) -> tuple[CallKind, int] | None:
        calls = self.order.calls()
        if not calls:
            return None
        call = data.draw(st.sampled_from(calls))
        return call.kind, call.number

    def result(self, data: st.DataObject, kind: CallKind, number: int) -> PSPResult:
        call = self.order.call(kind, number)
        status = data.draw(st.sampled_from(list(PSPStatus)))
        amount = data.draw(st.sampled_from([call.amount, call.amount, call.amount + 1]))
        code = "card_declined" if status == PSPStatus.DECLINED else None
        return PSPResult("pay_x", status, amount, "EUR", decline_code=code)

    @rule(data=st.data())
    def record_result(self, data: st.DataObject) -> None:
        picked = self.pick(data)
        if picked:
            self.attempt(self.order.record_result, *picked, self.result(data, *picked))

    @rule(data=st.data(), outage=st.sampled_from(OUTAGES))
    def record_outage(self, data: st.DataObject, outage: Any) -> None:
        picked = self.pick(data)
        if picked:
            self.attempt(self.order.record_outage, *picked, outage, 10)

    @rule(data=st.data(), found=st.booleans())
    def inquire(self, data: st.DataObject, found: bool) -> None:
        picked = self.pick(data)
        if picked:
            result = self.result(data, *picked) if found else None
            self.attempt(self.order.record_inquiry, *picked, result)

    @rule(data=st.data(), action=st.sampled_from(list(Action)), due=minutes)
    def schedule(self, data: st.DataObject, action: Action, due: Any) -> None:
        picked = self.pick(data)
        if picked:
            self.attempt(self.order.schedule_retry, *picked, action, due, "test")

    @rule(data=st.data(), now=minutes)
    def resend(self, data: st.DataObject, now: Any) -> None:
        picked = self.pick(data)
        if picked:
            self.attempt(self.order.resend, *picked, now)

    @rule(data=st.data(), ends=st.booleans())
    def fail(self, data: st.DataObject, ends: bool) -> None:
        picked = self.pick(data)
        if picked:
            self.attempt(self.order.fail_call, *picked, "gave_up", "gave up", ends_order=ends)

    @rule(data=st.data())
    def review(self, data: st.DataObject) -> None:
        picked = self.pick(data)
        if picked:
            self.attempt(self.order.send_to_review, *picked, "outcome_unknown")

    @rule(outcome=st.sampled_from(RESOLUTION_OUTCOMES))
    def resolve(self, outcome: str) -> None:
        self.attempt(self.order.resolve, outcome, "checked at the PSP", "ops")

    @rule(
        token=st.sampled_from(["pm_card_visa", "pm_card_declined", "4242424242424242"]),
        now=minutes,
        key=st.sampled_from([None, "k-a", "k-b"]),
    )
    def new_attempt(self, token: str, now: Any, key: str | None) -> None:
        request = (key, f"attempt:{token}") if key else None
        self.attempt(self.order.request_authorization, token, now, request)

    @rule(amount=st.one_of(st.none(), st.integers(-1, 3000)))
    def capture(self, amount: int | None) -> None:
        self.attempt(self.order.request_capture, amount, NOW)

    @rule()
    def cancel(self) -> None:
        self.attempt(self.order.request_cancel, NOW)

    @rule(amount=st.integers(-1, 3000))
    def refund(self, amount: int) -> None:
        self.attempt(self.order.request_refund, amount, NOW)

    @rule(number=st.integers(1, 3))
    def void(self, number: int) -> None:
        self.attempt(self.order.request_void, number, NOW)

    @rule(now=minutes)
    def expire(self, now: Any) -> None:
        self.attempt(self.order.expire, now)

    @rule(data=st.data(), event_id=st.sampled_from(["evt_1", "evt_2", "evt_3"]))
    def webhook(self, data: st.DataObject, event_id: str) -> None:
        picked = self.pick(data)
        if picked:
            result = self.result(data, *picked)
            self.attempt(self.order.apply_webhook, event_id, "payment.x", *picked, result)

    # ----------------------------------------------------------------- invariants

    @invariant()
    def split_sums_exactly(self) -> None:
        assert sum(s.gross for s in self.order.splits) == self.order.amount
        assert all(s.platform_fee + s.payout == s.gross for s in self.order.splits)

    @invariant()
    def money_stays_within_the_split(self) -> None:
        for split, captured, refunded in zip(
            self.order.splits, self.order.captured, self.order.refunded, strict=True
        ):
            shares = f"split {split}, captured {captured}, refunded {refunded}"
            assert captured.platform_fee + captured.payout == captured.gross, shares
            assert 0 <= refunded.gross <= captured.gross, shares
            assert 0 <= refunded.platform_fee <= captured.platform_fee, shares
            assert 0 <= refunded.payout <= captured.payout, shares
            assert captured.gross <= split.gross + 1, shares  # a mismatch on a closed order

    @invariant()
    def terminal_states_stay_terminal(self) -> None:
        if self.previous in TERMINAL:
            assert self.order.status == self.previous

    @invariant()
    def versions_increase_by_one(self) -> None:
        versions = [e.originator_version for e in self.events]
        assert versions == list(range(1, len(versions) + 1))
        assert self.order.version == len(versions)

    @invariant()
    def replay_rebuilds_the_same_state(self) -> None:
        rebuilt = None
        for event in self.events:
            rebuilt = event.mutate(rebuilt)
        assert state(rebuilt) == state(self.order)  # type: ignore[arg-type]

    @invariant()
    def at_most_one_authorization_in_flight(self) -> None:
        in_flight = [a for a in self.order.attempts if a.in_flight]
        assert len(in_flight) <= 1
        if self.order.status == OrderStatus.REQUIRES_PAYMENT_METHOD:
            assert not in_flight

    @invariant()
    def failures_carry_a_code_and_message(self) -> None:
        for call in self.order.calls():
            if call.failed or getattr(call, "status", None) == AttemptStatus.DECLINED:
                assert call.failure_code and call.failure_message

    @invariant()
    def statuses_agree_with_the_money(self) -> None:
        status = self.order.status
        if status in (OrderStatus.SUCCEEDED, OrderStatus.PARTIALLY_REFUNDED):
            assert self.order.captured_amount > self.order.refunded_amount
        if status == OrderStatus.REFUNDED:
            assert self.order.refunded_amount == self.order.captured_amount > 0
        if status == OrderStatus.AUTHORIZED:
            assert any(a.status == AttemptStatus.AUTHORIZED for a in self.order.attempts)
        assert self.order.expires_at == NOW + TTL


TestOrderMachine = OrderMachine.TestCase
TestOrderMachine.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
