"""The payments application: thin command methods (get -> act -> save) over the event store.

The write-ahead rule lives here: every PSP call is preceded by a committed event that
records it (AuthorizationRequested, CaptureRequested, ..., PSPRequestResent), and followed
by the event that records its outcome. A crash in between leaves a call the recovery
worker finds and settles, inquiry first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from anyio import to_thread
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    Notification,
    Recording,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import Environment, EnvType

from app.pacing import Gate
from domain.calls import CallKind, PspCall
from domain.cart import Checkout
from domain.clock import Clock, system_clock
from domain.disputes import DisputeNotice, Liability
from domain.errors import ConcurrentChange, IdempotencyKeyReused, OrderNotFound
from domain.order import PaymentOrder
from domain.psp import (
    AuthorizeRequest,
    FollowUpRequest,
    Inquiry,
    PSPOutage,
    PSPPort,
    PSPRejected,
    PSPResult,
    PSPUnavailable,
)
from domain.recovery import Recovery, RetryPolicy
from domain.worklist import Timing

log = logging.getLogger("payments.app")
CONFLICT_RETRIES = 5
"""How often a command reloads and reapplies itself after another process saved first."""
CHECKOUTS_AT_ONCE = 32
"""Checkouts working at once on one event loop (`Gate`): four for each of the server's eight
event-store writers keep them busy; the rest wait before their next step, answers first.
At 256 connections, side by side against no gate, a third of the races lost to a webhook,
and the API's CPU per checkout 7-13% above its figure at 32 connections instead of 22-26%
(docs/performance.md)."""
IN_FLIGHT_FIRST_LOOK_S = 0.002
IN_FLIGHT_LOOK_S = 0.01
"""A webhook about another process's call in flight looks again after 2 ms, then at
doubling intervals up to 10 ms: recording an answer takes a few milliseconds under load."""
Client = str | None
"""The API client a command acts for (it sees only its own orders); None for operators and
the system itself, which see all."""


class _Replay:
    """Marks a command that an Idempotency-Key replayed."""


REPLAY = _Replay()

CommandResult = PspCall | bool | _Replay | None
"""What a command returned: the PSP call it started (to be sent next), whether it changed
the order (webhooks, inquiries), that its Idempotency-Key replayed, or nothing."""


class CallTable(Protocol):
    """Calls by `call_key`, each until a deadline (`time.monotonic()`), shared by the
    processes of one `serve` (bootstrap/recent.CallsInFlight)."""

    def add(self, key: str, until: float) -> None: ...

    def discard(self, key: str) -> None: ...

    def __contains__(self, key: object) -> bool: ...


@dataclass(frozen=True)
class PaymentsConfig:
    """Business settings the application needs (from PAYMENTS_* via the composition root)."""

    platform_fee_bps: int = 1000
    session_ttl: timedelta = timedelta(minutes=30)
    psp_timeout_s: float = 10.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    stale_after: timedelta = timedelta(seconds=21)
    """How long a sent request may go unanswered before the worker asks the PSP about it
    (its sender may have died): well past the PSP timeout, so a live sender finishes first."""
    reconcile_after: timedelta = timedelta(hours=1)
    """How long after giving a call up the worker asks the PSP about it one last time."""
    dispute_liability: Liability = Liability.SELLER
    """Who bears a lost dispute: the sellers, pro rata, or the platform."""

    @property
    def timing(self) -> Timing:
        return Timing(self.stale_after, self.reconcile_after)


@dataclass(frozen=True)
class Written:
    """A command's result: the order as saved, and a log position at least as new as its last
    event (a read with that `min_position` sees the order as the command left it)."""

    order: PaymentOrder
    position: int | None = None
    replayed: bool = False
    """True when the Idempotency-Key had already done this: nothing new was recorded."""
    result: CommandResult = None
    """What the command returned (a call it started, for instance)."""


@dataclass(frozen=True)
class PspAnswer:
    """What one PSP call came back with: a result, an outage, or a refusal of the request."""

    result: PSPResult | None = None
    outage: PSPOutage | None = None
    rejected: PSPRejected | None = None
    elapsed_ms: int = 0


class PaymentsApp(Application[UUID]):
    """Commands and event-store queries for payment orders."""

    name = "payments"

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        psp: PSPPort,
        config: PaymentsConfig,
        clock: Clock = system_clock,
        rand: Callable[[], float] = random.random,
        codec: Callable[[], JSONTranscoder] = JSONTranscoder,
    ) -> None:
        self.psp = psp
        self.codec = codec
        self.config = config
        self.clock = clock
        self.recovery = Recovery(config.policy, rand)
        self.listeners: list[Callable[[int], None]] = []
        self.failpoint: Callable[[str], None] = lambda step: None
        """Called at named steps; crash tests make it kill the process there."""
        self.answering: dict[str, asyncio.Event] = {}
        """Calls whose PSP answer a checkout on this process's event loop is recording now
        (by `call_key`), set when it is recorded: a webhook about one waits for it instead
        of racing it to the store, where the loser pays a conflict and a reload."""
        self.in_flight: CallTable | None = None
        """Under `serve`, the calls any of its processes is waiting on the PSP or recording
        the answer for (bootstrap/recent.py): a webhook about another process's call waits
        for it too."""
        self.on_final: Callable[[UUID, CallKind, int], None] = lambda *call: None
        """Told of each call this process saw reach its final outcome (no result can change
        it any more): the API answers the PSP's copies of it without loading the order."""
        self.gate = Gate(CHECKOUTS_AT_ONCE)
        """Checkouts working at once on this process's event loop (app/pacing.py)."""
        super().__init__(dict(env))

    def construct_transcoder(self) -> Transcoder:
        """The event store's JSON codec, as the composition root chose it (adapters/codec.py)."""
        transcoder = self.codec()
        self.register_transcodings(transcoder)
        return transcoder

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        """Tell listeners (the in-process projection runner) the log has grown."""
        if recordings:
            for listener in self.listeners:
                listener(recordings[-1].notification.id)

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Only the settings we pass in: never the process environment behind our back."""
        return Environment(name, dict(env or {}))

    # ----------------------------------------------------------------- queries

    def get_order(
        self, order_id: UUID, version: int | None = None, *, client: Client = None
    ) -> PaymentOrder:
        """The order rebuilt from its events, as it is now or as it was at `version`.
        With `client`, another client's order is not found."""
        try:
            order: PaymentOrder = self.repository.get(order_id, version=version)
        except AggregateNotFoundError:
            raise OrderNotFound("no such payment order") from None
        if version is not None and order.version != version:
            raise OrderNotFound(f"the order has no version {version}")
        _check_visible(order.client_id, client)
        return order

    def history(self, order_id: UUID, *, client: Client = None) -> list[DomainEventProtocol[UUID]]:
        """Every event of an order, oldest first: the audit trail."""
        events = list(self.events.get(order_id))
        if not events:
            raise OrderNotFound("no such payment order")
        _check_visible(getattr(events[0], "client_id", None), client)
        return events

    # ----------------------------------------------------------------- commands

    def place_checkout(
        self,
        checkout: Checkout,
        *,
        client_id: str,
        idempotency_key: str,
        return_url: str | None = None,
    ) -> Written:
        """Record the checkout and its first attempt in one commit, then charge the PSP once.

        A retried key finds the stream already there (the store's uniqueness constraint is
        the idempotency lock) and answers with that order instead.
        """
        order, attempt = self._placed(checkout, client_id, idempotency_key, return_url)
        try:
            self.save_once(order)
        except IntegrityError:
            return self._replay(order.id, order.fingerprint)
        return self.send(order, attempt)

    @property
    def checkout_async(self) -> bool:
        """Whether `place_checkout_async` may run: the PSP has an async client."""
        return self.psp.asynchronous

    async def place_checkout_async(
        self,
        checkout: Checkout,
        *,
        client_id: str,
        idempotency_key: str,
        return_url: str | None = None,
    ) -> Written:
        """`place_checkout` on the server's event loop: the same events, saved and sent in
        the same order, but no thread waits while the database or the PSP answers, so a
        process serves as many checkouts at once as its CPU allows, at any PSP latency.
        The rare paths (a replayed key, a conflicting save) run on a worker thread."""
        async with self.gate.held(answering=False):
            order, call = self._placed(checkout, client_id, idempotency_key, return_url)
            try:
                await self._save_once_async(order)
                replayed = False
            except IntegrityError:
                replayed = True
        if replayed:  # outside the gate: a replay may wait for the first request's answer
            return await to_thread.run_sync(self._replay, order.id, order.fingerprint)
        kind, number = call.kind, call.number
        key = call_key(order.id, kind.value, number)
        self.answering[key] = recorded = asyncio.Event()
        in_flight = self.in_flight
        if in_flight is not None:
            in_flight.add(key, time.monotonic() + self._answer_wait_s)
        try:
            self.failpoint("before_psp_call")
            answer = await self._call_psp_async(order, call)
            self.failpoint("after_psp_call")
            async with self.gate.held(answering=True):
                written = await self._change_async(
                    order, lambda o: self._record_answer(o, o.call(kind, number), answer)
                )
            self._after_answer(written, kind, number)
        finally:
            del self.answering[key]
            if in_flight is not None:
                in_flight.discard(key)
            recorded.set()
        return written

    @property
    def _answer_wait_s(self) -> float:
        """How long a checkout's PSP call can last, from its start to its answer recorded:
        the PSP timeout and a second. A webhook waits for such a call no longer, and an
        entry in `in_flight` holds it no longer."""
        return self.config.psp_timeout_s + 1

    async def answered(self, order_id: UUID, kind: str, number: int) -> None:
        """Wait (at most the PSP timeout and a second) while a checkout on this event loop,
        or on another process of this `serve` (`in_flight`), is still waiting for or
        recording the PSP's answer for this call."""
        key = call_key(order_id, kind, number)
        recorded = self.answering.get(key)
        if recorded is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(recorded.wait(), self._answer_wait_s)
        elif self.in_flight is not None and key in self.in_flight:
            await self._answered_elsewhere(self.in_flight, key)

    async def _answered_elsewhere(self, in_flight: CallTable, key: str) -> None:
        """Look again, at growing intervals, until the call has left `in_flight` (recorded,
        or past its deadline: its process may have been killed), at most the PSP timeout
        and a second."""
        deadline = time.monotonic() + self._answer_wait_s
        pause = IN_FLIGHT_FIRST_LOOK_S
        while key in in_flight and time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(pause * 2, IN_FLIGHT_LOOK_S)

    def _placed(
        self, checkout: Checkout, client_id: str, idempotency_key: str, return_url: str | None
    ) -> tuple[PaymentOrder, PspCall]:
        """A new order and its first attempt, not yet saved."""
        now = self.clock()
        order = PaymentOrder.place(
            checkout,
            client_id=client_id,
            idempotency_key=idempotency_key,
            fee_bps=self.config.platform_fee_bps,
            now=now,
            session_ttl=self.config.session_ttl,
        )
        attempt = order.request_authorization(checkout.payment_method, now, None, return_url)
        return order, attempt

    async def _call_psp_async(self, order: PaymentOrder, call: PspCall) -> PspAnswer:
        """`_call_psp` for an authorization, awaited on the event loop."""
        started = time.monotonic()
        try:
            return PspAnswer(
                result=await self.psp.authorize_async(self._authorize_request(order, call))
            )
        except (PSPOutage, PSPRejected) as error:
            return _failed(error, started)

    async def _change_async(
        self, order: PaymentOrder, command: Callable[[PaymentOrder], CommandResult]
    ) -> Written:
        """`change` on the event loop, starting from the order in hand."""
        current: PaymentOrder | None = order
        for _ in range(CONFLICT_RETRIES):
            if current is None:
                current = await to_thread.run_sync(self.get_order, order.id)
            result = command(current)
            try:
                recordings = await self._save_once_async(current)
            except IntegrityError:
                current = None
                continue
            if recordings:
                return Written(current, recordings[-1].notification.id, result=result)
            position = await to_thread.run_sync(self.latest_position)
            return Written(current, position, result=result)
        raise ConcurrentChange("the order kept changing under this command; try again")

    async def _save_once_async(self, order: PaymentOrder) -> list[Recording[UUID]]:
        """`save_once` on the event loop."""
        pending = [(e.originator_version, e.timestamp) for e in order.pending_events]
        try:
            return await self._save_async(order)
        except IntegrityError:
            if not pending or not await to_thread.run_sync(self._stored_as, order.id, pending):
                raise
            return []

    async def _save_async(self, order: PaymentOrder) -> list[Recording[UUID]]:
        """The library's `save` for one aggregate (this application takes no snapshots and
        caches no aggregates), with the insert awaited instead of blocking. The events come
        straight from the order: the library's ProcessingEvent checks each object against
        runtime Protocols first, 2% of an API process's time under checkout load."""
        events = order.collect_events()
        stored = [self.mapper.to_stored_event(event) for event in events]
        ids = await self._insert_async(stored)
        recordings = [
            Recording(
                event,
                Notification(
                    originator_id=s.originator_id,
                    originator_version=s.originator_version,
                    topic=s.topic,
                    state=s.state,
                    id=notification_id,
                ),
            )
            for event, s, notification_id in zip(events, stored, ids or [], strict=True)
        ]
        self._notify(recordings)
        return recordings

    async def _insert_async(self, stored: list[StoredEvent]) -> Sequence[int] | None:
        """The recorder's own async insert (PostgreSQL), else its blocking insert on a
        worker thread (SQLite)."""
        insert = getattr(self.recorder, "insert_events_async", None)
        if insert is not None:
            ids: Sequence[int] = await insert(stored)
            return ids
        return await to_thread.run_sync(self.recorder.insert_events, stored)

    async def open_async(self, max_size: int) -> None:
        """Open what `place_checkout_async` awaits in the running loop (server startup)."""
        opener = getattr(self.recorder, "open_async", None)
        if opener is not None:
            await opener(max_size)

    async def close_async(self) -> None:
        closer = getattr(self.recorder, "close_async", None)
        if closer is not None:
            await closer()

    def add_attempt(
        self,
        order_id: UUID,
        payment_method: str,
        request_key: str | None = None,
        *,
        client: Client = None,
        return_url: str | None = None,
    ) -> Written:
        """Try another payment method after a decline, before the session ends."""
        request = _request(request_key, "attempt", payment_method)
        return self._follow_up(
            order_id,
            request,
            lambda o: o.request_authorization(payment_method, self.clock(), request, return_url),
            client,
        )

    def capture(
        self,
        order_id: UUID,
        amount: int | None,
        request_key: str | None = None,
        *,
        client: Client = None,
    ) -> Written:
        """Capture all or part of a manual-capture order's authorization."""
        request = _request(request_key, "capture", amount)
        return self._follow_up(
            order_id,
            request,
            lambda o: o.request_capture(amount, self.clock(), request=request),
            client,
        )

    def cancel(
        self, order_id: UUID, request_key: str | None = None, *, client: Client = None
    ) -> Written:
        """Void an authorization, or close an order that was never authorized."""
        request = _request(request_key, "cancel", None)
        return self._follow_up(
            order_id, request, lambda o: o.request_cancel(self.clock(), request), client
        )

    def refund(
        self, order_id: UUID, amount: int, request_key: str | None = None, *, client: Client = None
    ) -> Written:
        """Refund part or all of what was captured."""
        request = _request(request_key, "refund", amount)
        return self._follow_up(
            order_id,
            request,
            lambda o: o.request_refund(amount, self.clock(), request=request),
            client,
        )

    def _follow_up(
        self,
        order_id: UUID,
        request: tuple[str, str] | None,
        command: Callable[[PaymentOrder], PspCall | None],
        client: Client,
    ) -> Written:
        """Record a command's write-ahead event (unless its key replays), then call the PSP."""

        def record(order: PaymentOrder) -> PspCall | _Replay | None:
            _check_visible(order.client_id, client)
            if request and order.replays(*request):
                return REPLAY
            return command(order)

        written = self.change(order_id, record)
        if written.result is REPLAY:
            order = self._await_first_answer(written.order)
            return Written(order, self.latest_position(), replayed=True)
        if isinstance(written.result, PspCall):
            return self.send(written.order, written.result)
        return written

    def apply_webhook(
        self,
        order_id: UUID,
        event_id: str,
        event_type: str,
        kind: CallKind,
        number: int,
        result: PSPResult,
    ) -> Written:
        """Apply a verified PSP notification; `result` is True when it changed the order."""

        def apply(order: PaymentOrder) -> bool:
            if order.call(kind, number).awaiting_buyer:
                order.end_session_if_over(self.clock())
            changed = order.apply_webhook(event_id, event_type, kind, number, result)
            call = order.call(kind, number)
            if changed and call.awaiting_buyer:  # a challenge learnt by webhook: ask later too
                self.recovery.plan(order, call, self.clock())
            return changed

        # No position: the webhook's answer has no read to make consistent, and a copy of
        # an outcome already recorded (most webhooks) would pay a query just for it.
        written = self.change(order_id, apply, position=False)
        self._report_if_final(written.order, kind, number)  # its next copies: known duplicates
        return written

    def apply_dispute(
        self, order_id: UUID, event_id: str, attempt: int, notice: DisputeNotice
    ) -> Written:
        """Apply a verified notification about a dispute; `result` is True when it changed
        the order."""
        liability = self.config.dispute_liability
        return self.change(
            order_id, lambda o: o.apply_dispute(event_id, attempt, notice, liability)
        )

    def resolve(self, order_id: UUID, outcome: str, note: str, operator: str) -> Written:
        """An operator's finding for an order in manual review (ops only, audited)."""
        return self.change(order_id, lambda o: o.resolve(outcome, note, operator))

    def change(
        self,
        order_id: UUID,
        command: Callable[[PaymentOrder], CommandResult],
        order: PaymentOrder | None = None,
        *,
        position: bool = True,
    ) -> Written:
        """Apply a command and save; on a concurrent save, reload and apply it again.
        Without `position`, a command that recorded nothing leaves the position unset."""
        for _ in range(CONFLICT_RETRIES):
            current = order or self.get_order(order_id)
            result = command(current)
            try:
                recordings = self.save_once(current)
            except IntegrityError:
                order = None
                continue
            if recordings:
                return Written(current, recordings[-1].notification.id, result=result)
            # Nothing new (another writer, a webhook say, got there first): the newest
            # position covers whatever last changed the order.
            return Written(current, self.latest_position() if position else None, result=result)
        raise ConcurrentChange("the order kept changing under this command; try again")

    def latest_position(self) -> int:
        """The newest position in the log (0 when it is empty)."""
        return self.recorder.max_notification_id() or 0

    def save_once(self, order: PaymentOrder) -> list[Recording[UUID]]:
        """Save the order's new events; a conflict with those very events counts as saved.

        The store retries a commit whose acknowledgement was lost; the retry then collides
        with its own first try. Telling that from a real conflict (another writer) keeps a
        command from being applied twice or reported as failed when it succeeded.
        """
        pending = [(e.originator_version, e.timestamp) for e in order.pending_events]
        try:
            return self.save(order)
        except IntegrityError:
            if pending and self._stored_as(order.id, pending):
                return []
            raise

    def _stored_as(self, order_id: UUID, pending: list[tuple[int, datetime]]) -> bool:
        first, last = pending[0][0], pending[-1][0]
        stored = self.events.get(order_id, gt=first - 1, lte=last)
        return [(e.originator_version, getattr(e, "timestamp", None)) for e in stored] == pending

    # ----------------------------------------------------------------- PSP calls

    def send(self, order: PaymentOrder, call: PspCall) -> Written:
        """Call the PSP for a call already recorded as requested, then record the outcome."""
        kind, number = call.kind, call.number
        self.failpoint("before_psp_call")
        order, answer = self._prepare(order, call)
        if answer is None:
            answer = self._call_psp(order, order.call(kind, number))
        self.failpoint("after_psp_call")
        written = self.change(
            order.id, lambda o: self._record_answer(o, o.call(kind, number), answer), order
        )
        self._after_answer(written, kind, number)
        return written

    def _report_if_final(self, order: PaymentOrder, kind: CallKind, number: int) -> PspCall:
        """The call; `on_final` is told of it once no result is accepted any more."""
        settled = order.call(kind, number)
        if not settled.in_flight and not settled.failed:
            self.on_final(order.id, kind, number)
        return settled

    def _after_answer(self, written: Written, kind: CallKind, number: int) -> None:
        """Log a PSP call's recorded outcome, and report the call if it is final."""
        settled = self._report_if_final(written.order, kind, number)
        log.info(
            "psp %s %s: %s",
            kind.value,
            number,
            settled.failure_code or getattr(settled, "status", ""),
            extra={
                "order_id": str(written.order.id),
                "call": f"{kind.value}:{number}",
                "order_status": written.order.status.value,
            },
        )

    def _prepare(self, order: PaymentOrder, call: PspCall) -> tuple[PaymentOrder, PspAnswer | None]:
        """A two-step PSP first creates its payment (no money moves); its reference is
        recorded before anything can confirm it. A failure here moved no money either."""
        if call.kind != CallKind.AUTHORIZE or call.psp_reference:
            return order, None
        try:
            reference = self.psp.prepare(self._authorize_request(order, call))
        except PSPOutage as outage:
            refused = PSPUnavailable(f"creating the payment failed: {outage.message}"[:300])
            return order, PspAnswer(outage=refused)
        if reference is None:
            return order, None
        kind, number = call.kind, call.number
        written = self.change(
            order.id, lambda o: o.record_psp_payment(kind, number, reference), order
        )
        return written.order, None

    def inquiry(self, order: PaymentOrder, call: PspCall) -> Inquiry:
        """What to ask the PSP about a call: its key, and the PSP's payment if we know it."""
        attempt = (
            call
            if call.kind == CallKind.AUTHORIZE
            else order.attempt(order.operation(call.number).attempt)
        )
        return Inquiry(
            call.psp_key, call.kind.value, attempt.psp_reference, call.amount, order.currency
        )

    def _call_psp(self, order: PaymentOrder, call: PspCall) -> PspAnswer:
        """Make the PSP call; what came back is recorded on a freshly loaded order."""
        started = time.monotonic()
        try:
            return PspAnswer(result=self._dispatch(order, call))
        except (PSPOutage, PSPRejected) as error:
            return _failed(error, started)

    def _record_answer(self, order: PaymentOrder, call: PspCall, answer: PspAnswer) -> None:
        if answer.outage is not None:
            self.recovery.after_outage(order, call, answer.outage, answer.elapsed_ms, self.clock())
        elif answer.rejected is not None:
            rejected = answer.rejected
            reason = f"psp_rejected: HTTP {rejected.status_code}: {rejected}"[:300]
            self.recovery.after_rejection(order, call, reason, self.clock())
        elif answer.result is not None:
            self.recovery.after_result(order, call, answer.result, self.clock())

    def _dispatch(self, order: PaymentOrder, call: PspCall) -> PSPResult:
        if call.kind == CallKind.AUTHORIZE:
            return self.psp.authorize(self._authorize_request(order, call))
        op = order.operation(call.number)
        request = FollowUpRequest(
            idempotency_key=op.psp_key,
            psp_reference=order.attempt(op.attempt).psp_reference or "",
            amount=op.amount,
            currency=order.currency,
        )
        operations = {
            CallKind.CAPTURE: self.psp.capture,
            CallKind.VOID: self.psp.void,
            CallKind.REFUND: self.psp.refund,
        }
        return operations[call.kind](request)

    @staticmethod
    def _authorize_request(order: PaymentOrder, call: PspCall) -> AuthorizeRequest:
        return AuthorizeRequest(
            idempotency_key=call.psp_key,
            reference=str(order.id),
            amount=call.amount,
            currency=order.currency,
            payment_method=order.attempt(call.number).payment_method,
            capture=order.auto_capture,
            psp_reference=call.psp_reference,
            retry=call.tries > 1,
            return_url=order.attempt(call.number).return_url,
        )

    # ----------------------------------------------------------------- replays

    def _replay(self, order_id: UUID, fingerprint: str) -> Written:
        existing = self.get_order(order_id)
        if existing.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request body",
                field="Idempotency-Key",
            )
        order = self._await_first_answer(existing)
        return Written(order, self.latest_position(), replayed=True)

    def _await_first_answer(self, order: PaymentOrder) -> PaymentOrder:
        """While the winning request is still waiting for the PSP, wait for it (bounded)."""
        deadline = time.monotonic() + self.config.psp_timeout_s + 2.0
        while order.awaiting_psp and time.monotonic() < deadline:
            time.sleep(0.05)
            order = self.get_order(order.id)
        return order


def _failed(error: PSPOutage | PSPRejected, started: float) -> PspAnswer:
    """A PSP call that raised: an outage (with how long it took) or a refused request."""
    if isinstance(error, PSPRejected):
        return PspAnswer(rejected=error)
    return PspAnswer(outage=error, elapsed_ms=int((time.monotonic() - started) * 1000))


def call_key(order_id: UUID, kind: str, number: int) -> str:
    """One PSP call of one order, as a key."""
    return f"{order_id}:{kind}:{number}"


def _check_visible(owner: str | None, client: Client) -> None:
    """Another client's order is 'not found' (`client` None: an operator, who sees all)."""
    if client is not None and owner != client:
        raise OrderNotFound("no such payment order")


def _request(request_key: str | None, command: str, argument: object) -> tuple[str, str] | None:
    """The client's Idempotency-Key with a fingerprint of what it asked for."""
    return (request_key, f"{command}:{argument}") if request_key else None
