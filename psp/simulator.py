"""The PSP simulator: a FastAPI app that behaves like a real PSP, faults included.

Idempotent by `Idempotency-Key`; test tokens pm_card_visa (and any other pm_card_*)
succeed, pm_card_declined / pm_card_insufficient_funds decline, pm_card_processing answers
`processing` and reports the result by webhook, pm_card_threeDSecure2Required answers
`requires_action`: the buyer confirms at `GET /challenge/{payment id}` ("Complete" or
"Fail"), the result is notified by webhook and the buyer sent to the payment's `return_url`.
`/_control/*` sets faults, lists what the PSP really did, and resets it.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from psp.fault_http import error_response, fault_control_routes, refuse_before, spoil_after
from psp.faults import FaultPlan, FaultSettings
from psp.payments_lane import PaymentsLane
from psp.settlement import Quirk, report
from psp.sim_state import Notice, Outcome, SimError, SimulatedPSP
from psp.webhook_sender import WebhookSender

Key = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=255)]


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int = Field(ge=1)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    payment_method: str = Field(min_length=1, max_length=200)
    capture: bool = True
    reference: str = Field(min_length=1, max_length=200)
    return_url: str | None = Field(default=None, min_length=1, max_length=2000)


class DisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int | None = Field(default=None, ge=1)
    reason: str = Field(default="fraudulent", min_length=1, max_length=100)


class ResolveDisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["won", "lost"]


class QuirkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Quirk
    payment: str | None = Field(default=None, min_length=1, max_length=100)
    """The payment a next_batch or amount_differs quirk concerns."""
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")

    @model_validator(mode="after")
    def _payment_when_needed(self) -> QuirkIn:
        if self.kind in ("next_batch", "amount_differs") and self.payment is None:
            raise ValueError(f"{self.kind} needs the payment it concerns")
        return self


def _moment(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


class AmountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int | None = Field(default=None, ge=1)


class Simulator:
    """The simulator's state, faults and webhook delivery, shared by its routes."""

    def __init__(self, sender: WebhookSender, webhooks: Literal["all", "async"]) -> None:
        self.plan = FaultPlan(FaultSettings())
        self.books = self._new_books()
        self.sender = sender
        self.webhooks = webhooks
        self.in_flight = 0
        self.most_in_flight = 0
        """The most payment requests in progress at once since the last reset: how many
        calls a client really had open together."""

    async def charge(self, payment: dict[str, Any], key: str, base_url: str) -> Response:
        """`POST /v1/payments` (the route and psp/payments_lane.py): a payment, once per key;
        a challenged card waits for the buyer at `base_url`/challenge/<payment id>."""
        mismatch = self.plan.mismatch()
        return await self.handle(
            lambda: self.books.authorize(
                key,
                payment,
                mismatch=mismatch,
                challenge_base=base_url,
                hold_lifetime_s=self.plan.settings.hold_lifetime_s,
            )
        )

    async def handle(self, operation: Callable[[], Outcome]) -> Response:
        """Run one PSP request through the fault plan."""
        self.in_flight += 1  # one event loop: no lock needed
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await self._handle(operation)
        finally:
            self.in_flight -= 1

    async def _handle(self, operation: Callable[[], Outcome]) -> Response:
        fault = self.plan.next_fault()
        refused = await refuse_before(self.plan.settings, fault)
        if refused is not None:
            return refused
        try:
            outcome = operation()
        except SimError as error:
            return error_response(error.status, error.code, error.message)
        self.notify(outcome)
        return await spoil_after(self.plan.settings, fault, JSONResponse(outcome.body))

    async def inquire(self, key: str) -> Response:
        fault = self.plan.next_fault(inquiry=True)
        refused = await refuse_before(self.plan.settings, fault)
        if refused is not None:
            return refused
        if fault == "timeout":
            await asyncio.sleep(self.plan.settings.hang_ms / 1000)
        body = self.books.inquire(key)
        if body is None:
            return error_response(404, "not_found", "no request with that idempotency key")
        return JSONResponse(body)

    def counters(self) -> dict[str, int]:
        """Reported by `GET /_control/faults` next to the injected faults."""
        return {"webhooks_sent": self.sender.sent, "most_in_flight": self.most_in_flight}

    def reset(self) -> None:
        """`POST /_control/reset`: forget the payments and the faults."""
        self.plan = FaultPlan(FaultSettings())
        self.most_in_flight = self.in_flight
        self.books = self._new_books()

    def _new_books(self) -> SimulatedPSP:
        books = SimulatedPSP()
        books.fees = lambda: (self.plan.settings.fee_bps, self.plan.settings.fee_fixed)
        return books

    @property
    def webhook_events(self) -> str:
        return self.plan.settings.webhook_events or self.webhooks

    def notify(self, outcome: Outcome) -> None:
        """Schedule webhooks for what just happened (and resolve a processing payment later)."""
        if self.webhook_events == "all":
            for notice in outcome.notices:
                self._deliver(notice)
        if outcome.processing:
            self.sender.spawn(self._resolve_later(outcome.processing))

    async def _resolve_later(self, payment_id: str) -> None:
        await asyncio.sleep(self.plan.processing_delay_s())
        self._notify_later(self.books.resolve_processing(payment_id))

    def answer_challenge(self, payment_id: str, *, completed: bool) -> str | None:
        """The buyer's answer to their bank: notify it (faults apply: lost, late, twice) and
        say where the buyer goes next."""
        self._notify_later(self.books.answer_challenge(payment_id, completed=completed))
        return self.books.payments[payment_id].return_url

    def disputed(self, step: Callable[[], list[Notice]]) -> Response:
        """Apply a dispute step to the books and notify it (unless webhooks are off)."""
        try:
            notices = step()
        except SimError as error:
            return error_response(error.status, error.code, error.message)
        self._notify_later(notices)
        return JSONResponse(notices[-1].body)

    def _notify_later(self, notices: list[Notice]) -> None:
        """Results that come after the request (a bank's answer, a dispute): notified
        unless webhooks are off, whether the simulator sends all events or only these."""
        if self.webhook_events != "none":
            for notice in notices:
                self._deliver(notice)

    def _deliver(self, notice: Notice) -> None:
        if self.plan.lost_webhook():
            return
        copies = 2 if self.plan.duplicate_webhook() else 1
        self.sender.send(notice, copies=copies, delay_s=self.plan.webhook_delay_s)


def create_simulator(
    webhook_url: str | None = None,
    webhook_secret: str = "",
    webhooks: Literal["all", "async"] = "all",
    *,
    fast_lane: bool = True,
) -> FastAPI:
    """The simulator app; webhooks go to `webhook_url`, signed with `webhook_secret`.
    `fast_lane=False` leaves every request to FastAPI (the lane's tests compare the two)."""
    sim = Simulator(WebhookSender(webhook_url, webhook_secret), webhooks)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await sim.sender.close()

    app = FastAPI(title="PSP simulator", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.simulator = sim
    if fast_lane:
        app.add_middleware(PaymentsLane, charge=sim.charge, model=PaymentIn)
    _payment_routes(app, sim)
    _challenge_routes(app, sim)
    _control_routes(app, sim)
    return app


def _payment_routes(app: FastAPI, sim: Simulator) -> None:
    @app.post("/v1/payments")
    async def create_payment(body: PaymentIn, key: Key, request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return await sim.charge(body.model_dump(exclude_none=True), key, base)

    @app.post("/v1/payments/{payment_id}/capture")
    async def capture(payment_id: str, key: Key, body: AmountIn | None = None) -> Response:
        request = (body or AmountIn()).model_dump(exclude_none=True)
        return await sim.handle(lambda: sim.books.capture(key, payment_id, request))

    @app.post("/v1/payments/{payment_id}/void")
    async def void(payment_id: str, key: Key) -> Response:
        return await sim.handle(lambda: sim.books.void(key, payment_id, {}))

    @app.post("/v1/payments/{payment_id}/refunds")
    async def refund(payment_id: str, key: Key, body: AmountIn) -> Response:
        if body.amount is None:
            return error_response(400, "invalid_amount", "a refund needs an amount")
        request = {"amount": body.amount}
        return await sim.handle(lambda: sim.books.refund(key, payment_id, request))

    @app.get("/v1/payments")
    async def inquire(idempotency_key: Annotated[str, Query(min_length=1)]) -> Response:
        return await sim.inquire(idempotency_key)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}


def _challenge_routes(app: FastAPI, sim: Simulator) -> None:
    """The bank's challenge page a buyer is sent to, and the two answers it posts."""

    @app.get("/challenge/{payment_id}", response_class=HTMLResponse)
    async def challenge_page(payment_id: str) -> HTMLResponse:
        payment = sim.books.payments.get(payment_id)
        if payment is None or payment.status != "requires_action":
            return HTMLResponse(_page("No challenge", NO_CHALLENGE), status_code=404)
        return HTMLResponse(_page("Confirm your payment", challenge_form(payment_id)))

    @app.post("/challenge/{payment_id}/{answer}")
    async def answer_challenge(payment_id: str, answer: Literal["complete", "fail"]) -> Response:
        payment = sim.books.payments.get(payment_id)
        if payment is None or payment.status != "requires_action":
            return HTMLResponse(_page("No challenge", NO_CHALLENGE), status_code=409)
        back = sim.answer_challenge(payment_id, completed=answer == "complete")
        if back:
            return RedirectResponse(back, status_code=303)
        return HTMLResponse(_page("Thank you", "<p>You can close this page.</p>"))


NO_CHALLENGE = "<p>This payment is not waiting for a confirmation (any more).</p>"


def challenge_form(payment_id: str) -> str:
    """Two buttons, each a form posting the buyer's answer."""
    safe = html.escape(payment_id)
    return (
        "<p>Your bank asks you to confirm this payment.</p>"
        f'<form method="post" action="/challenge/{safe}/complete">'
        '<button type="submit" id="complete">Complete</button></form>'
        f'<form method="post" action="/challenge/{safe}/fail">'
        '<button type="submit" id="fail">Fail</button></form>'
    )


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head><body><main><h1>{title}</h1>{body}</main></body></html>"
    )


def _control_routes(app: FastAPI, sim: Simulator) -> None:
    fault_control_routes(app, sim)

    @app.get("/_control/payments")
    async def payments() -> dict[str, Any]:
        return {"payments": sim.books.snapshot()}

    @app.get("/v1/reports/settlement")
    async def settlement_report(
        start: Annotated[datetime, Query(alias="from")], end: Annotated[datetime, Query(alias="to")]
    ) -> Response:
        """Every batch whose payout is booked in [from, to), whole, as CSV (psp.settlement)."""
        settings = sim.plan.settings
        text = report(
            sim.books.settlement,
            _moment(start),
            _moment(end),
            time.time(),
            settings.settlement_delay_s,
            settings.settlement_batch_s,
        )
        return Response(text, media_type="text/csv")

    @app.post("/_control/settlement/quirks", status_code=201)
    async def plant_quirk(body: QuirkIn) -> dict[str, str]:
        """Plant a quirk real settlement reports have (psp/settlement.py)."""
        reference = sim.books.settlement.plant(body.kind, time.time(), body.payment, body.currency)
        return {"kind": body.kind, "reference": reference}

    @app.post("/_control/payments/{payment_id}/dispute", status_code=201)
    async def dispute(payment_id: str, body: DisputeIn) -> Response:
        """The buyer's bank opens a dispute: `dispute.created` is sent (faults apply)."""
        return sim.disputed(lambda: sim.books.open_dispute(payment_id, body.amount, body.reason))

    @app.post("/_control/disputes/{dispute_id}/resolve")
    async def resolve_dispute(dispute_id: str, body: ResolveDisputeIn) -> Response:
        """The bank decides: `dispute.closed` is sent."""
        return sim.disputed(lambda: sim.books.resolve_dispute(dispute_id, body.outcome))
