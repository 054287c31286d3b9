"""Failpoints: PAYMENTS_FAILPOINTS=step[,step] makes this process SIGKILL itself at a step.

For crash tests only (off unless set), in the way etcd's gofail and TiKV's fail-rs do it:
the write-ahead rule is proven by dying exactly between the commit that records a PSP call
and the call itself (`before_psp_call`), or between the PSP's answer and its recording
(`after_psp_call`).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

STEPS = ("before_psp_call", "after_psp_call")
log = logging.getLogger("payments.failpoints")


def parse(spec: str) -> frozenset[str]:
    """The steps named in PAYMENTS_FAILPOINTS; raises ValueError for unknown ones."""
    steps = frozenset(s.strip() for s in spec.split(",") if s.strip())
    unknown = steps - set(STEPS)
    if unknown:
        raise ValueError(f"unknown failpoints {sorted(unknown)}; known: {', '.join(STEPS)}")
    return steps


def killer(steps: frozenset[str]) -> Callable[[str], None]:
    """A failpoint hook that kills this process at any of `steps`."""

    def failpoint(step: str) -> None:
        if step in steps:
            log.warning("failpoint %s: killing this process", step)
            os.kill(os.getpid(), signal.SIGKILL)

    return failpoint
