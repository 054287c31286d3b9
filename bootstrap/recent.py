"""Bounded memories of ids a process has seen: its own, the calls every process of one
`payments serve` saw reach their final outcome, and the calls one of them is waiting on
the PSP's answer for.

A PSP sends a webhook for every payment, and it lands on whichever HTTP process accepted
the connection: with two, on the one that did not record the call's outcome about half the
time. That one knew nothing of the call, so it read and replayed the order on a worker
thread to find it final, for a webhook that changes nothing. The calls that reached their
final outcome are therefore also kept in a table all the processes of one `serve` map
(`SharedCalls`, a file in their shared directory: bootstrap/shared_counters.py), so any of
them answers such a copy at once: at 32 connections, 8% more checkouts a second for 9% less
of the API's CPU each (docs/performance.md, issue 13's thirteenth slice).

The table forgets: each call has one slot, chosen by its digest, and a later call with the
same slot takes it (65,536 slots: at 500 payments a second a call stays about two minutes,
while its webhooks arrive within seconds). Forgetting costs only the slow way round. A slot
holds a call's 16-byte digest, so a lookup never finds another call there; a slot read while
another process writes it may hold half of each digest, which matches neither.

A second table of the same kind holds the calls whose answer some process is waiting for
or recording (`CallsInFlight`, `PaymentsApp.in_flight`): a webhook that overtakes the
answer on another process waits for it there, as it does on the process that made the call
(`PaymentsApp.answered`), instead of racing it to the store, where the loser pays a conflict
and a reload (at 300 ms and 256 connections, 3-5% of checkouts did: issue 13's fifteenth
slice). A call leaves that table when its answer is recorded. One left behind (its process
killed) holds each of its webhooks until the call's own deadline (its PSP timeout and a
second after the call), then no more; a copy of a call already known final never waits.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Self

from bootstrap.shared_counters import VARIABLE

SLOTS = 1 << 16
WIDTH = 16
"""Bytes per slot: a blake2b digest of the call's key."""
FILE = "final-calls"
IN_FLIGHT_FILE = "calls-in-flight"
EMPTY = bytes(WIDTH)
MARK = 12
"""Bytes of the digest a slot of `CallsInFlight` keeps, beside its 4-byte deadline."""


class RecentIds:
    """A bounded set of ids, the oldest forgotten first (thread-safe: the API's threads)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._ids

    def add(self, key: str) -> None:
        with self._lock:
            self._ids[key] = None
            self._ids.move_to_end(key)
            while len(self._ids) > self.size:
                self._ids.popitem(last=False)


class _MappedTable:
    """SLOTS slots of WIDTH bytes in a file every process of one `serve` maps."""

    def __init__(self, path: Path) -> None:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(descriptor).st_size < SLOTS * WIDTH:  # the first process to open it
                os.ftruncate(descriptor, SLOTS * WIDTH)  # (the same size again: no change)
            self._table = mmap.mmap(descriptor, SLOTS * WIDTH)
        finally:
            os.close(descriptor)

    @classmethod
    def of_this_serve(cls, name: str) -> Self | None:
        """The table `name` of this process's `serve`, None when it runs under none (or the
        file cannot be made or mapped)."""
        directory = os.environ.get(VARIABLE)  # serve's shared directory
        if not directory:
            return None
        try:
            return cls(Path(directory) / name)
        except (OSError, ValueError):  # no such directory, or it cannot be mapped
            return None


class SharedCalls(_MappedTable):
    """The table of final calls (see above)."""

    def add(self, key: str) -> None:
        digest, at = _slot(key)
        self._table[at : at + WIDTH] = digest

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        digest, at = _slot(key)
        return self._table[at : at + WIDTH] == digest


class CallsInFlight(_MappedTable):
    """The calls some process of one `serve` is waiting on the PSP or recording the answer
    for, each until a deadline (see above). A slot holds the first 12 bytes of the call's
    digest and its deadline, in whole seconds of the system's monotonic clock (the same in
    every process on the machine): an entry its process never took out (killed) is absent
    once the deadline has passed, so it holds a webhook no longer than the call it was for
    could have lasted."""

    def add(self, key: str, until: float) -> None:
        """Hold the call until `until` (`time.monotonic()`), unless taken out before."""
        digest, at = _slot(key)
        self._table[at : at + WIDTH] = digest[:MARK] + math.ceil(until).to_bytes(4, "little")

    def discard(self, key: str) -> None:
        """Empty the call's slot, unless a later call has taken it (a slot taken between the
        look and the write loses that call: its webhooks then do not wait for it)."""
        digest, at = _slot(key)
        if self._table[at : at + MARK] == digest[:MARK]:
            self._table[at : at + WIDTH] = EMPTY

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        digest, at = _slot(key)
        slot = self._table[at : at + WIDTH]
        return slot[:MARK] == digest[:MARK] and int.from_bytes(slot[MARK:], "little") > (
            time.monotonic()
        )


def _slot(key: str) -> tuple[bytes, int]:
    digest = hashlib.blake2b(key.encode(), digest_size=WIDTH).digest()
    return digest, int.from_bytes(digest[:8], "little") % SLOTS * WIDTH


class FinalCalls:
    """Calls known to have reached their final outcome: those this process recorded, and
    with `shared`, those any process of its `serve` recorded."""

    def __init__(self, size: int, shared: SharedCalls | None = None) -> None:
        self.local = RecentIds(size)
        self.shared = shared

    @classmethod
    def of_this_serve(cls, size: int) -> FinalCalls:
        """With the table of this process's `serve` when it runs under one (and the file
        can be made), else this process's own memory alone."""
        return cls(size, SharedCalls.of_this_serve(FILE))

    def add(self, key: str) -> None:
        self.local.add(key)
        if self.shared is not None:
            self.shared.add(key)

    def __contains__(self, key: object) -> bool:
        return key in self.local or (self.shared is not None and key in self.shared)
