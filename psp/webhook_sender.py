"""The simulator's webhook delivery: signed, delayed, sometimes duplicated, retried on failure."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from adapters.psp.signature import HEADER, sign
from psp.sim_state import Notice

log = logging.getLogger("psp.sim.webhooks")
DELIVERY_TRIES = 8


class WebhookSender:
    """Posts notices to the merchant's webhook URL in background tasks."""

    def __init__(self, url: str | None, secret: str) -> None:
        self.url = url
        self.secret = secret
        self.sent = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine in the background, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def send(self, notice: Notice, *, copies: int, delay_s: Callable[[], float]) -> None:
        """Deliver `copies` identical events (same id), each after its own random delay."""
        if not self.url:
            return
        event = {
            "id": f"evt_{secrets.token_hex(12)}",
            "type": notice.type,
            "created": int(time.time()),
            "data": {"object": notice.body},
        }
        for _ in range(copies):
            self.spawn(self._deliver(event, delay_s()))

    async def _deliver(self, event: dict[str, Any], delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        body = json.dumps(event).encode()
        for attempt in range(DELIVERY_TRIES):
            if await self._post(body):
                self.sent += 1
                return
            await asyncio.sleep(min(10.0, 0.25 * 2**attempt))
        log.warning("gave up delivering webhook %s", event["id"])

    async def _post(self, body: bytes) -> bool:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0)
        headers = {
            "Content-Type": "application/json",
            HEADER: sign(self.secret, body, int(time.time())),
        }
        try:
            response = await self._client.post(str(self.url), content=body, headers=headers)
        except httpx.HTTPError:
            return False
        return response.status_code < 500
