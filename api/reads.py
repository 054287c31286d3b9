"""Read-your-writes: commands answer with the log position they reached
(`Payments-Position`), and queries may ask for a state at least that new (`min_position`)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Query

from adapters.db import Database
from api.problems import Problem, invalid
from projections import positions
from projections.queries import log_head

POSITION_HEADER = "Payments-Position"
WAIT_S = 2.0
MinPosition = Annotated[
    int | None,
    Query(
        ge=0,
        le=2**62,
        description="Answer from a state at least this new (a command's Payments-Position)",
    ),
]


def caught_up(db: Database, position: int) -> bool:
    """Has the order read model reached `position`?"""
    return positions.of(db, "orders") >= position


def await_position(db: Database, position: int) -> None:
    """Wait (briefly) for the read model to reach `position`; 503 if it does not.

    A position past the end of the log was never handed out: that is the client's error.
    """
    if not caught_up(db, position) and position > log_head(db):
        raise invalid("min_position", "past the end of the log")
    deadline = time.monotonic() + WAIT_S
    while not caught_up(db, position):
        if time.monotonic() > deadline:
            raise Problem(
                503,
                "read-model-behind",
                "the read model is catching up; retry shortly",
                headers={"Retry-After": "1"},
            )
        time.sleep(0.02)
