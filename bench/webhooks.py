"""Outbound webhooks under the checkout load: a healthy receiver (chaos/receiver.py, which
verifies every delivery) subscribed to every public event while the checkouts run; then
how many deliveries per second reached it and how long after each event."""

from __future__ import annotations

import json
import statistics
import time
from datetime import datetime
from typing import Any

import httpx

from chaos.processes import webhook_receiver


class Subscriber:
    """Starts the receiver and subscribes it before the load; `finish` measures."""

    def __init__(self, api_url: str) -> None:
        self.process = webhook_receiver().start()
        self.url = str(self.process.health_url).removesuffix("/healthz")
        body = {"url": f"{self.url}/hooks", "events": ["*"]}
        created = httpx.post(f"{api_url}/v1/webhook-endpoints", json=body, timeout=30)
        created.raise_for_status()
        httpx.put(f"{self.url}/_control", json={"secret": created.json()["secret"]}, timeout=10)

    def finish(self, db: Any, timeout_s: float = 180.0) -> dict[str, Any]:
        """Wait until nothing is pending, then the figures; the receiver is stopped."""
        try:
            _drain(db, timeout_s)
            return _figures(db, self.url)
        finally:
            self.process.stop()


def _drain(db: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    sql = "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'"
    while time.monotonic() < deadline and db.one(sql)[0][0]:
        time.sleep(0.5)


def _figures(db: Any, receiver_url: str) -> dict[str, Any]:
    rows = db.one(
        "SELECT d.delivered_at, e.body FROM webhook_deliveries d "
        "JOIN public_events e ON e.id = d.event_id WHERE d.status = 'delivered'"
    )
    lags = [
        (float(at) - datetime.fromisoformat(json.loads(body)["created"]).timestamp()) * 1000
        for at, body in rows
    ]
    span = db.one("SELECT MIN(at), MAX(at) FROM webhook_attempts")[0]
    seconds = float(span[1] - span[0]) if span[0] is not None else 0.0
    received = httpx.get(f"{receiver_url}/_control", timeout=30).json()
    ordered = sorted(lags)
    return {
        "delivered": len(rows),
        "verified_by_receiver": len(received["received"]),
        "unverified": received["unverified"],
        "per_second": round(len(rows) / seconds, 1) if seconds else 0.0,
        "lag_p50_ms": round(statistics.median(ordered)) if ordered else 0,
        "lag_p99_ms": round(ordered[int(len(ordered) * 0.99) - 1]) if ordered else 0,
        "lag_max_ms": round(ordered[-1]) if ordered else 0,
    }
