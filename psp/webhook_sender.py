"""The simulator's webhook delivery: signed, delayed, sometimes duplicated, retried on failure."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

from adapters.psp.signature import HEADER, sign
from psp.poster import FAILURES, Poster
from psp.sim_state import Notice

log = logging.getLogger("psp.sim.webhooks")
DELIVERY_TRIES = 8
TIMEOUT_S = 5.0


CONCURRENCY = 16
"""Deliveries in flight at once: a queue feeds this many senders, each with a connection of
its own (psp/poster.py), so a burst of webhooks costs timers and queue slots, not a task and
a connection each (issue 13)."""


class WebhookSender:
    """Posts notices to the merchant's webhook URL: each copy waits out its delay on a
    timer, then a bounded set of senders delivers it, retrying on failure."""

    def __init__(self, url: str | None, secret: str) -> None:
        if url:
            Poster(url)  # refuses a URL it could not post to, at start rather than per send
        self.url = url
        self.secret = secret
        self.sent = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._posters: list[Poster] = []
        self._queue: asyncio.Queue[tuple[bytes, str, int]] | None = None

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine in the background, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def send(self, notice: Notice, *, copies: int, delay_s: Callable[[], float]) -> None:
        """Deliver `copies` identical events (same id), each after its own random delay."""
        if not self.url:
            return
        event_id = f"evt_{secrets.token_hex(12)}"
        event = {
            "id": event_id,
            "type": notice.type,
            "created": int(time.time()),
            "data": {"object": notice.body},
        }
        body = json.dumps(event).encode()
        loop = asyncio.get_running_loop()
        queue = self._senders()
        for _ in range(copies):
            loop.call_later(delay_s(), queue.put_nowait, (body, event_id, 0))

    def _senders(self) -> asyncio.Queue[tuple[bytes, str, int]]:
        if self._queue is None:
            self._queue = asyncio.Queue()
            for _ in range(CONCURRENCY):
                self.spawn(self._deliver_queued(self._queue))
        return self._queue

    async def _deliver_queued(self, queue: asyncio.Queue[tuple[bytes, str, int]]) -> None:
        loop = asyncio.get_running_loop()
        poster = Poster(str(self.url))
        self._posters.append(poster)
        while True:
            body, event_id, attempt = await queue.get()
            if await self._posted(poster, body):
                self.sent += 1
            elif attempt + 1 < DELIVERY_TRIES:
                retry = (body, event_id, attempt + 1)
                loop.call_later(min(10.0, 0.25 * 2**attempt), queue.put_nowait, retry)
            else:
                log.warning("gave up delivering webhook %s", event_id)

    async def _posted(self, poster: Poster, body: bytes) -> bool:
        """Whether the receiver took the webhook. A failed exchange, or anything unexpected
        (logged), closes the connection and leaves the delivery to be tried again: no
        sender ever stops."""
        headers = {HEADER: sign(self.secret, body, int(time.time()))}
        try:
            return await asyncio.wait_for(poster.post(body, headers), TIMEOUT_S) < 500
        except (*FAILURES, TimeoutError):
            poster.close()
        except Exception:
            log.exception("webhook delivery failed unexpectedly")
            poster.close()
        return False

    async def close(self) -> None:
        """Stop delivering (the simulator's shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        for poster in self._posters:
            poster.close()
        self._posters.clear()
