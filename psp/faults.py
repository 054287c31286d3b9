"""The simulator's fault controls: seeded rates plus an optional script of exact faults."""

from __future__ import annotations

import random
from collections import Counter, deque
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Fault = Literal["none", "timeout", "lost_response", "error_before", "error_after", "rate_limit"]
Rate = Field(default=0.0, ge=0.0, le=1.0)
REQUEST_FAULTS: tuple[Fault, ...] = (
    "rate_limit",
    "error_before",
    "timeout",
    "lost_response",
    "error_after",
)


class FaultSettings(BaseModel):
    """`PUT /_control/faults`. Rates are per request; the request rates may sum to at most 1.

    timeout: process, then hang for `hang_ms` (past the client's timeout);
    lost_response: process, then drop the connection mid-response;
    error_before / error_after: a 5xx without / after processing;
    rate_limit: 429 with `Retry-After: retry_after_s`, nothing processed.
    `script` (an extension) lists exact faults for the next requests, before any rate applies.
    Every field but the rates is an extension of the contract, for reproducible tests.
    """

    model_config = ConfigDict(extra="forbid")

    seed: int | None = None
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    timeout_rate: float = Rate
    lost_response_rate: float = Rate
    error_before_rate: float = Rate
    error_after_rate: float = Rate
    rate_limit_rate: float = Rate
    duplicate_webhook_rate: float = Rate
    lost_webhook_rate: float = Rate
    """A webhook the PSP never sends (an extension: results then arrive by inquiry only)."""
    amount_mismatch_rate: float = Rate
    webhook_delay_ms: int = Field(default=0, ge=0, le=600_000)
    processing_delay_ms: int | None = Field(default=None, ge=0, le=600_000)
    """How long the bank takes to settle a `processing` payment: exactly this long when set,
    otherwise a draw like a webhook delay."""
    hang_ms: int = Field(default=30_000, ge=0, le=600_000)
    settlement_delay_s: float = Field(default=2 * 24 * 3600, ge=0, le=31 * 24 * 3600)
    """How long after a balance movement the PSP settles it (then it is in a batch)."""
    settlement_batch_s: float = Field(default=24 * 3600, gt=0, le=31 * 24 * 3600)
    """How long a settlement batch is; each closes with one payout per currency."""
    fee_bps: int = Field(default=140, ge=0, le=10_000)
    fee_fixed: int = Field(default=25, ge=0, le=1_000_000)
    """The PSP's fee on each charge: `fee_bps` of it plus `fee_fixed` minor units."""
    hold_lifetime_s: float = Field(default=7 * 24 * 3600, gt=0, le=31 * 24 * 3600)
    """How long an authorization holds the buyer's money before the PSP releases it
    (Stripe's card holds: 7 days). Set for new authorizations."""
    retry_after_s: int = Field(default=1, ge=0, le=3_600)
    faults_on_inquiries: bool = True
    script: list[Fault] = Field(default_factory=list, max_length=10_000)
    webhook_events: Literal["all", "async", "none"] | None = None
    """Which events to notify: all, only results that come later (processing), or none;
    unset keeps the simulator's --webhooks choice."""

    @model_validator(mode="after")
    def _rates_fit(self) -> Self:
        if sum(getattr(self, f"{fault}_rate") for fault in REQUEST_FAULTS) > 1.0:
            raise ValueError("the request fault rates sum to more than 1")
        return self


class FaultPlan:
    """Draws faults from the settings with a seeded generator, and counts what it injected."""

    def __init__(self, settings: FaultSettings, injected: Counter[str] | None = None) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)  # noqa: S311 - simulation, not security
        self.script: deque[Fault] = deque(settings.script)
        self.injected: Counter[str] = Counter() if injected is None else injected

    def next_fault(self, *, inquiry: bool = False) -> Fault:
        """The fault for the next request."""
        if inquiry and not self.settings.faults_on_inquiries:
            return "none"
        fault = self.script.popleft() if self.script else self._draw()
        if inquiry and fault in ("lost_response", "error_after"):
            fault = "error_before"
        self.injected[fault] += 1
        return fault

    def mismatch(self) -> bool:
        return self._chance("amount_mismatch", self.settings.amount_mismatch_rate)

    def lost_webhook(self) -> bool:
        return self._chance("lost_webhook", self.settings.lost_webhook_rate)

    def duplicate_webhook(self) -> bool:
        return self._chance("duplicate_webhook", self.settings.duplicate_webhook_rate)

    def processing_delay_s(self) -> float:
        """When the bank answers a `processing` payment."""
        fixed = self.settings.processing_delay_ms
        return fixed / 1000 if fixed is not None else self.webhook_delay_s()

    def webhook_delay_s(self) -> float:
        """Uniform in [0, webhook_delay_ms], so deliveries can arrive out of order."""
        return self.rng.uniform(0, self.settings.webhook_delay_ms) / 1000

    def _draw(self) -> Fault:
        roll = self.rng.random()
        for fault in REQUEST_FAULTS:
            roll -= getattr(self.settings, f"{fault}_rate")
            if roll < 0:
                return fault
        return "none"

    def _chance(self, name: str, rate: float) -> bool:
        hit = rate > 0 and self.rng.random() < rate
        if hit:
            self.injected[name] += 1
        return hit
