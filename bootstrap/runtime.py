"""Process-wide tuning for serving processes, applied once everything long-lived is built.

The garbage collector: a server process holds a few hundred thousand objects that live as
long as it does (modules, the app, pools). Every full collection walked all of them, about
70 ms during which nothing else ran. `gc.freeze()` moves them out of the collector's sight,
and a larger first-generation threshold makes the young collections, which a checkout's
short-lived objects trigger, several times rarer. Measured in docs/performance.md.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Allocations (net of frees) between young collections; Python's default is 700."""


def settle_heap() -> None:
    """Freeze what exists now and space out the young collections (call it just before
    serving, in each server process)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
