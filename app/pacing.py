"""Checkouts on one event loop: the answers in hand are recorded before new orders start.

A checkout works in two short steps around its PSP call: it records the new order (and the
call it is about to make), then the PSP's answer. Under a load past what the CPU serves,
every step of every checkout in flight used to queue for the same event loop and the same
few database connections, first come first served, so an answer could wait behind a hundred
new orders. Meanwhile the PSP's webhook with the same outcome arrived (often at the other
server process) and recorded it first; the checkout's own record then lost the race and paid
a failed insert and a reload (a fifth of all checkouts at 256 connections, issue 13).

`Gate` lets at most `size` checkouts work at once and lets those holding an answer in before
those starting. Nothing waits for it while it is recorded half-way: a new checkout waits
before its first event, an answered one before its second.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Gate:
    """At most `size` holders on one event loop; `answering` waiters go first, each kind
    first come first served."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a gate needs room for at least one holder")
        self.free = size
        self._answering: deque[asyncio.Future[None]] = deque()
        self._starting: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def held(self, *, answering: bool) -> AsyncIterator[None]:
        await self._enter(self._answering if answering else self._starting)
        try:
            yield
        finally:
            self._leave()

    @property
    def waiting(self) -> int:
        return sum(not f.done() for f in (*self._answering, *self._starting))

    async def _enter(self, queue: deque[asyncio.Future[None]]) -> None:
        if self.free:  # a free place means nobody waits: `_leave` hands places on directly
            self.free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if not turn.cancelled():
                self._leave()  # handed a place, then cancelled before taking it: pass it on
            raise  # else `turn` is done: `_leave` drops it when it comes to it

    def _leave(self) -> None:
        for queue in (self._answering, self._starting):
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self.free += 1
