"""Process-wide tuning for serving processes and for the batch jobs (an audit, a rebuild),
applied once everything long-lived is built.

The garbage collector: a server process holds a few hundred thousand objects that live as
long as it does (modules, the app, pools). Every full collection walked all of them, about
70 ms during which nothing else ran. `gc.freeze()` moves them out of the collector's sight,
and a larger first-generation threshold makes the young collections, which a checkout's
short-lived objects trigger, several times rarer. An audit or a rebuild allocates a chunk's
events, orders and rows at a time and gains as much (10-20% more events per second, measured
in docs/performance.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 20_000
"""Allocations (net of frees) between young collections; Python's default is 700."""


def settle_heap() -> None:
    """Freeze what exists now and space out the young collections (call it just before
    serving, in each server process)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


@contextmanager
def batch_heap() -> Iterator[None]:
    """`settle_heap` for the length of a batch job, in a process that goes on afterwards: the
    collector's thresholds are as they were once it ends, and so is the heap, unfrozen, if
    nothing was frozen before (what was can only stay frozen: gc unfreezes all or none)."""
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    settle_heap()
    try:
        yield
    finally:
        if not frozen:
            gc.unfreeze()
        gc.set_threshold(*before)
