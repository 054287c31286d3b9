"""The fault schedule: everything the storm will do, derived from the seed alone.

The same seed gives the same simulator fault settings, the same workload mix and the same
timeline of process kills and database disruptions. (The interleaving with real processes
still varies from run to run; the schedule itself does not.)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

INTENTS = (
    "happy",
    "decline_then_retry",
    "processing",
    "manual_capture",
    "manual_cancel",
    "refund",
    "duplicate",
    "abandon",
    "challenge_complete",
    "challenge_fail",
    "challenge_abandon",
    "challenge_late",
)
TARGETS = ("api", "worker-0", "worker-1", "projections")
"""Processes the storm may SIGKILL (the simulator stands for the outside world)."""


@dataclass(frozen=True)
class Disruption:
    """At `at_s` seconds into the storm: kill a process (restarted after `down_s`), or cut
    every database connection of the stack (`target` == "database")."""

    at_s: float
    target: str
    down_s: float


@dataclass(frozen=True)
class Schedule:
    seed: int
    psp_faults: dict[str, Any]
    intents: tuple[str, ...]
    disruptions: tuple[Disruption, ...]


def schedule(seed: int, orders: int, storm_s: float) -> Schedule:
    """The plan for `orders` orders over a storm of `storm_s` seconds."""
    rng = random.Random(seed)  # noqa: S311 - reproducible simulation, not security
    return Schedule(
        seed=seed,
        psp_faults=_psp_faults(rng, seed),
        intents=tuple(rng.choice(INTENTS) for _ in range(orders)),
        disruptions=_disruptions(rng, storm_s),
    )


def _psp_faults(rng: random.Random, seed: int) -> dict[str, Any]:
    """About 30% of PSP requests fail in some way, in seeded proportions."""
    weights = [rng.uniform(0.5, 1.5) for _ in range(5)]
    total = sum(weights)
    kinds = ("timeout", "lost_response", "error_before", "error_after", "rate_limit")
    rates = {
        f"{kind}_rate": round(0.30 * w / total, 4) for kind, w in zip(kinds, weights, strict=True)
    }
    return (
        rates
        | {
            "seed": seed,
            "latency_ms": rng.randint(0, 20),
            "hang_ms": 2500,
            "retry_after_s": 1,
            "duplicate_webhook_rate": round(rng.uniform(0.1, 0.4), 3),
            "webhook_delay_ms": rng.randint(200, 2000),
            "amount_mismatch_rate": 0.0,
            "webhook_events": "all",
        }
        | SETTLEMENT
    )


SETTLEMENT = {"settlement_delay_s": 0, "settlement_batch_s": 4}
"""Batches short enough to close while the storm heals, so its report can be reconciled."""


def _disruptions(rng: random.Random, storm_s: float) -> tuple[Disruption, ...]:
    """About one kill every six seconds and one database cut every fifteen."""
    events = []
    at = rng.uniform(1.0, 4.0)
    while at < storm_s:
        events.append(
            Disruption(round(at, 2), rng.choice(TARGETS), round(rng.uniform(0.2, 2.0), 2))
        )
        at += rng.uniform(3.0, 9.0)
    at = rng.uniform(5.0, 12.0)
    while at < storm_s:
        events.append(Disruption(round(at, 2), "database", 0.0))
        at += rng.uniform(10.0, 20.0)
    return tuple(sorted(events, key=lambda d: d.at_s))
