"""The failure dashboard's and the ledger's queries."""

from __future__ import annotations

from typing import Any

from adapters.db import Database

HOUR = 3600
REVIEW_SQL = (
    "SELECT order_id, buyer_id, amount, currency, review_reason, updated_at "
    "FROM order_view WHERE review_reason IS NOT NULL ORDER BY updated_at LIMIT 100"
)
"""The manual-review queue, oldest first: read from `order_view_in_review`, an index of those
orders alone, not by scanning every order (docs/performance.md, issue 13's sixteenth slice)."""
IN_REVIEW_SQL = "SELECT COUNT(*) FROM order_view WHERE review_reason IS NOT NULL"
"""How many orders await an operator (a gauge every metrics scrape reads): the same index."""


def failures(db: Database, now: float, window_s: float, stuck_after_s: float) -> dict[str, Any]:
    """Failures by code and by hour over the window, attempts by status, stuck orders and the
    manual-review queue."""
    since = now - window_s
    with db.read() as tx:
        by_code = tx.execute(
            "SELECT code, COUNT(*) FROM failure_log WHERE at >= %s GROUP BY code "
            "ORDER BY COUNT(*) DESC, code",
            (since,),
        )
        by_hour = tx.execute(
            f"SELECT {db.bucket('at', HOUR)} AS hour, code, COUNT(*) FROM failure_log "  # noqa: S608
            "WHERE at >= %s GROUP BY hour, code ORDER BY hour, code",
            (since,),
        )
        attempts = tx.execute(
            "SELECT status, COUNT(*) FROM attempt_view GROUP BY status ORDER BY status"
        )
        stuck = tx.execute(
            "SELECT order_id, buyer_id, amount, currency, updated_at FROM order_view "
            "WHERE status = 'processing' AND updated_at < %s ORDER BY updated_at LIMIT 100",
            (now - stuck_after_s,),
        )
        review = tx.execute(REVIEW_SQL)
    return {
        "failures_by_code": [{"code": c, "count": n} for c, n in by_code],
        "failures_by_hour": [{"hour": float(h), "code": c, "count": n} for h, c, n in by_hour],
        "attempts_by_status": [{"status": s, "count": n} for s, n in attempts],
        "stuck_processing": [_order(r) for r in stuck],
        "manual_review": [_order(r[:4] + r[5:]) | {"reason": r[4]} for r in review],
    }


def challenges(db: Database, now: float, window_s: float) -> dict[str, Any]:
    """3-D Secure challenges: pending now, and asked / completed / failed / abandoned over
    the window, in all and by hour."""
    since = now - window_s
    with db.read() as tx:
        pending = tx.execute("SELECT COUNT(*) FROM order_view WHERE status = 'requires_action'")
        totals = tx.execute(
            "SELECT outcome, COUNT(*) FROM challenge_log WHERE at >= %s GROUP BY outcome",
            (since,),
        )
        by_hour = tx.execute(
            f"SELECT {db.bucket('at', HOUR)} AS hour, outcome, COUNT(*) FROM challenge_log "  # noqa: S608
            "WHERE at >= %s GROUP BY hour, outcome ORDER BY hour, outcome",
            (since,),
        )
    counts = dict.fromkeys(("required", "completed", "failed", "abandoned"), 0)
    counts |= {outcome: int(n) for outcome, n in totals}
    return {
        "pending": int(pending[0][0]),
        "counts": counts,
        "by_hour": [{"hour": float(h), "code": o, "count": n} for h, o, n in by_hour],
    }


def lapsing_holds(db: Database, now: float, within_s: float) -> list[dict[str, Any]]:
    """Authorizations whose hold lapses within `within_s` (or already has, the worker not
    having recorded it yet), soonest first: capture them or they are released."""
    with db.read() as tx:
        rows = tx.execute(
            "SELECT w.order_id, o.buyer_id, o.amount, o.currency, w.due_at FROM work_queue w "
            "JOIN order_view o ON o.order_id = w.order_id "
            "WHERE w.task = 'lapse' AND w.due_at < %s ORDER BY w.due_at LIMIT 100",
            (now + within_s,),
        )
    return [_order(r) | {"lapses_at": float(r[4])} for r in rows]


def open_disputes(db: Database) -> list[dict[str, Any]]:
    """Disputes waiting for the merchant's evidence or the bank's decision, the most urgent
    evidence deadline first."""
    with db.read() as tx:
        rows = tx.execute(
            "SELECT dispute_id, order_id, status, amount, currency, reason, evidence_due_by "
            "FROM dispute_view WHERE status IN ('needs_response', 'under_review') "
            "ORDER BY evidence_due_by, dispute_id LIMIT 100"
        )
    keys = ("dispute_id", "order_id", "status", "amount", "currency", "reason", "due")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def psp_health(db: Database, now: float, window_s: float) -> list[dict[str, Any]]:
    """PSP timeouts and errors per minute over the last minutes."""
    with db.read() as tx:
        rows = tx.execute(
            f"SELECT {db.bucket('at', 60)} AS minute, code, COUNT(*) FROM failure_log "  # noqa: S608
            "WHERE at >= %s AND code LIKE 'psp_%%' GROUP BY minute, code ORDER BY minute, code",
            (now - window_s,),
        )
    return [{"minute": float(m), "code": c, "count": n} for m, c, n in rows]


def _order(row: tuple[Any, ...]) -> dict[str, Any]:
    order_id, buyer_id, amount, currency, updated_at = row
    return {
        "order_id": order_id,
        "buyer_id": buyer_id,
        "amount": amount,
        "currency": currency,
        "since": updated_at,
    }


def balances(db: Database) -> list[dict[str, Any]]:
    with db.read() as tx:
        rows = tx.execute(
            "SELECT account, currency, balance FROM ledger_balances ORDER BY account, currency"
        )
    return [{"account": a, "currency": c, "balance": b} for a, c, b in rows]


Cursor = tuple[float, str, int, int]


def entries_sql(after: bool) -> str:
    """An account's postings in the order of `ledger_entries_by_account_time`, which holds them
    in that order: a page costs its own rows, not a sort of all the account's postings (every
    capture posts to `psp_receivable`). With `after`, after a cursor."""
    where = "account = %s"
    if after:
        where += " AND (at, order_id, version, line) > (%s, %s, %s, %s)"
    return (
        "SELECT at, order_id, version, line, currency, amount FROM ledger_entries "  # noqa: S608
        f"WHERE {where} ORDER BY at, order_id, version, line LIMIT %s"
    )


def entries(db: Database, account: str, limit: int, after: Cursor | None) -> list[dict[str, Any]]:
    """An account's postings, oldest first, after the (at, order, version, line) cursor."""
    params: list[Any] = [account, *(after or ()), limit]
    with db.read() as tx:
        rows = tx.execute(entries_sql(after is not None), params)
    keys = ("at", "order_id", "version", "line", "currency", "amount")
    return [dict(zip(keys, r, strict=True)) for r in rows]
