"""The operators' dashboard, assembled from the read models, the runner and the Prometheus
counters."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prometheus_client.registry import Collector

from adapters import webhook_store
from api.pages import text
from api.pages.charts import Chart, slot_starts, stacked
from bootstrap.composition import Container
from domain.calls import CallKind
from domain.errors import OrderNotFound
from domain.money import format_amount
from domain.order import RESOLUTIONS
from projections import dashboard, quarantine, queries

HOUR, MINUTE = 3600.0, 60.0
HEALTH_MINUTES = 15
RECENT_ORDERS = 15
FAILING_AFTER_S = 5 * MINUTE
HOLD_WARNING_S = 24 * HOUR
"""Authorizations lapsing sooner than this are listed for capture on the dashboard."""
"""An endpoint failing for longer than this (or disabled) stands out on the dashboard."""


def board(container: Container, now: float, stuck_after_s: float, window_h: int) -> dict[str, Any]:
    """Everything the dashboard template shows."""
    data = dashboard.failures(container.db, now, window_h * HOUR, stuck_after_s)
    health = dashboard.psp_health(container.db, now, HEALTH_MINUTES * MINUTE)
    head, position = container.runner.lag()
    challenges = dashboard.challenges(container.db, now, window_h * HOUR)
    return {
        "challenges": challenges,
        "challenges_chart": failures_chart(challenges["by_hour"], now, window_h),
        "lapsing": [
            _money(row, now) | {"left_s": row["lapses_at"] - now}
            for row in dashboard.lapsing_holds(container.db, now, HOLD_WARNING_S)
        ],
        "hold_warning_s": HOLD_WARNING_S,
        "disputes": [
            row
            | {
                "amount_text": format_amount(row["amount"], row["currency"]),
                "left_s": float(row["due"]) - now if row["due"] is not None else None,
            }
            for row in dashboard.open_disputes(container.db)
        ],
        "failures": [_failure(row) for row in data["failures_by_code"]],
        "failures_chart": failures_chart(data["failures_by_hour"], now, window_h),
        "attempts": _attempts(data["attempts_by_status"]),
        "stuck": [_money(row, now) for row in data["stuck_processing"]],
        "review": [_review(container, row, now) for row in data["manual_review"]],
        "reconciliation": reconciliation_card(container),
        "health_chart": health_chart(health, now),
        "health_rows": health,
        "latency": psp_latency(container.metrics.latency),
        "lag": {"head": head, "position": position, "behind": container.runner.behind()},
        "recent": _recent(container),
        "quarantined": quarantine.rows(container.db),
        "endpoints": [endpoint_row(row, now) for row in webhook_store.health(container.db)],
        "failing_after_s": FAILING_AFTER_S,
    }


BREAK_RESOLUTIONS = (
    ("accepted", "Accepted — the PSP's row is right, nothing to correct"),
    ("corrected_at_psp", "Corrected at the PSP — it will fix its report"),
    ("corrected_here", "Corrected here — by a command on the order"),
    ("written_off", "Written off — not ours, or not worth recovering"),
)
"""What an operator may find about a break (api/routes/reconciliation.py's values)."""


def reconciliation_card(container: Container) -> dict[str, Any]:
    """The last imported batch, rows matched, open breaks by class and the break queue."""
    recon = container.reconciliation
    batches = recon.batches()
    by_class: dict[str, int] = defaultdict(int)
    open_breaks = recon.breaks("open", batches)
    for found in open_breaks:
        by_class[found["class"]] += 1
    last = batches[-1].summary() if batches else None
    return {
        "last": last,
        "batches": len(batches),
        "rows": sum(len(b.rows) for b in batches),
        "matched": sum(b.matched for b in batches),
        "open_by_class": dict(sorted(by_class.items())),
        "breaks": open_breaks[:100],
        "resolutions": BREAK_RESOLUTIONS,
    }


def failures_chart(rows: list[dict[str, Any]], now: float, window_h: int) -> Chart:
    """Failures by code per hour over the window."""
    return stacked(rows, "hour", slot_starts(now, HOUR, window_h), HOUR, "%H:00")


def health_chart(rows: list[dict[str, Any]], now: float) -> Chart:
    """PSP timeouts and errors per minute over the last minutes."""
    return stacked(rows, "minute", slot_starts(now, MINUTE, HEALTH_MINUTES), MINUTE, "%H:%M")


def _failure(row: dict[str, Any]) -> dict[str, Any]:
    declined = row["code"] in ("card_declined", "insufficient_funds")
    return row | {"explanation": text.explain(row["code"], declined=declined)}


def _attempts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    top = max([1, *(row["count"] for row in rows)])
    return [
        row | {"label": text.attempt_words(row["status"])[0], "share": row["count"] / top}
        for row in rows
    ]


def _money(row: dict[str, Any], now: float) -> dict[str, Any]:
    return row | {
        "amount_text": format_amount(row["amount"], row["currency"]),
        "age_s": now - float(row["since"]),
    }


def _review(container: Container, row: dict[str, Any], now: float) -> dict[str, Any]:
    """A review-queue row with the outcomes an operator may record for its call."""
    try:
        review = container.app.get_order(UUID(row["order_id"])).review
    except OrderNotFound:
        review = None
    return _money(row, now) | {
        "explanation": text.explain(row["reason"]),
        "outcomes": outcome_choices(review),
    }


def endpoint_row(row: dict[str, Any], now: float) -> dict[str, Any]:
    """A webhook endpoint's health for people: its state in words and tone, and times as ages.
    Only these fields reach the page (never the endpoint's secret)."""
    state, tone = endpoint_state(row["status"], row["failing_since"], now)
    return {
        "id": row["id"],
        "client_id": row["client_id"],
        "url": row["url"],
        "status": row["status"],
        "disabled_reason": row["disabled_reason"],
        "backlog": int(row["backlog"]),
        "state": state,
        "tone": tone,
        "last_success": _moment(row["last_success"], now),
        "failing_since": _moment(row["failing_since"], now),
    }


def endpoint_state(status: str, failing_since: float | None, now: float) -> tuple[str, str]:
    """(words, tone class): disabled, or enabled and failing for a while, stand out as bad;
    enabled and failing only lately is a wait (it is being retried)."""
    if status != "enabled":
        return status, "tone-bad"
    if failing_since is None:
        return "enabled", "tone-ok"
    if now - float(failing_since) >= FAILING_AFTER_S:
        return "enabled, failing", "tone-bad"
    return "enabled, retrying", "tone-wait"


def _moment(at: float | None, now: float) -> dict[str, Any] | None:
    """A past time as its age (`3 min` ago), with its exact UTC time for a `<time>` element."""
    if at is None:
        return None
    when = datetime.fromtimestamp(float(at), tz=UTC)
    return {"age_s": max(0.0, now - float(at)), "iso": when.isoformat(), "at": float(at)}


def outcome_choices(review: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(outcome, label) of what an operator may record for the call under review."""
    if not review:
        return []
    return [(o, text.outcome_label(o)) for o in RESOLUTIONS[CallKind(review["kind"])]]


def _recent(container: Container) -> list[dict[str, Any]]:
    page = queries.orders(
        container.db, client_id=None, status=None, buyer_id=None, limit=RECENT_ORDERS, cursor=None
    )
    return [
        {
            "order_id": doc["id"],
            "buyer_id": doc["buyer_id"],
            "status": doc["status"],
            "amount_text": format_amount(doc["amount"], doc["currency"]),
            "updated_at": doc["updated_at"],
        }
        for doc in page.items
    ]


def psp_latency(histogram: Collector) -> list[dict[str, Any]]:
    """Per PSP operation since `serve` started (in all its processes): calls, mean, and the
    bucket holding the 95th percentile (a histogram gives a bound, not an exact value)."""
    per_operation: dict[str, dict[str, Any]] = defaultdict(lambda: {"buckets": []})
    for metric in histogram.collect():
        for sample in metric.samples:
            found = per_operation[sample.labels.get("operation", "")]
            kind = sample.name.rsplit("_", 1)[-1]
            if kind == "bucket":
                found["buckets"].append((float(sample.labels["le"]), sample.value))
            elif kind in ("count", "sum"):
                found[kind] = sample.value
    return [
        {
            "operation": operation,
            "calls": int(found["count"]),
            "mean_s": found["sum"] / found["count"],
            "p95": _p95(sorted(found["buckets"]), found["count"]),
        }
        for operation, found in sorted(per_operation.items())
        if found.get("count")
    ]


def _p95(buckets: list[tuple[float, float]], count: float) -> str:
    previous = 0.0
    for bound, cumulative in buckets:
        if cumulative >= 0.95 * count:
            return f"≤ {bound:g} s" if bound != float("inf") else f"> {previous:g} s"
        previous = bound
    return "—"
