"""Operators' views: the failure dashboard, the ledger, Prometheus metrics."""

from __future__ import annotations

import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from api.auth import OpsCaller
from api.deps import Db
from api.problems import invalid, responses
from domain.inputs import ascii_int
from projections import dashboard

router = APIRouter(tags=["operations"])
STUCK_AFTER_S = 120.0
WINDOW_S = 24 * 3600.0


class FailuresOut(BaseModel):
    """The failure dashboard: what is failing, where, and what needs an operator."""

    failures_by_code: list[dict[str, Any]]
    failures_by_hour: list[dict[str, Any]]
    attempts_by_status: list[dict[str, Any]]
    stuck_processing: list[dict[str, Any]]
    manual_review: list[dict[str, Any]]
    psp_health: list[dict[str, Any]]


class Balance(BaseModel):
    account: str
    currency: str
    balance: int
    """Debits positive, credits negative, in minor units."""


class BalancesOut(BaseModel):
    accounts: list[Balance]
    totals: list[dict[str, Any]]
    """The sum of all balances per currency: always 0 in a balanced ledger."""


class EntriesOut(BaseModel):
    entries: list[dict[str, Any]]
    next_cursor: str | None


@router.get("/v1/dashboard/failures", responses=responses(401, 403, 503))
def failures(
    caller: OpsCaller,
    db: Db,
    stuck_after_s: Annotated[float, Query(gt=0, le=7 * 24 * 3600)] = STUCK_AFTER_S,
    window_s: Annotated[float, Query(gt=0, le=31 * 24 * 3600)] = WINDOW_S,
) -> FailuresOut:
    """Failures by code, by hour and by attempt status; stuck orders; the review queue."""
    now = time.time()
    board = dashboard.failures(db, now, window_s, stuck_after_s)
    return FailuresOut(**board, psp_health=dashboard.psp_health(db, now, 15 * 60))


@router.get("/v1/ledger/balances", responses=responses(401, 403, 503))
def balances(caller: OpsCaller, db: Db, request: Request) -> BalancesOut:
    """Every account's balance, settled batches included (`bank:<currency>`, the PSP's fees,
    what settlement cleared), and per-currency totals (which must be zero)."""
    rows = dashboard.balances(db)  # in the read model's order; settled accounts after
    settled = dict(request.app.state.container.reconciliation.settlement_balances())
    accounts = []
    for row in rows:
        key = (row["account"], row["currency"])
        accounts.append(Balance(**row | {"balance": row["balance"] + settled.pop(key, 0)}))
    accounts += [
        Balance(account=a, currency=c, balance=b) for (a, c), b in sorted(settled.items()) if b
    ]
    totals: dict[str, int] = {}
    for account in accounts:
        totals[account.currency] = totals.get(account.currency, 0) + account.balance
    return BalancesOut(
        accounts=accounts, totals=[{"currency": c, "sum": s} for c, s in sorted(totals.items())]
    )


@router.get("/v1/ledger/entries", responses=responses(401, 403, 422, 503))
def entries(
    caller: OpsCaller,
    db: Db,
    account: Annotated[str, Query(min_length=1, max_length=100)],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> EntriesOut:
    """One account's postings, oldest first."""
    after = _decode(cursor) if cursor else None
    rows = dashboard.entries(db, account, limit, after)
    last = rows[-1] if len(rows) == limit else None
    next_cursor = (
        f"{last['at']}|{last['order_id']}|{last['version']}|{last['line']}" if last else None
    )
    return EntriesOut(entries=rows, next_cursor=next_cursor)


def _decode(cursor: str) -> dashboard.Cursor:
    parts = cursor.split("|")
    if len(parts) == 4:
        at, order_id, version, line = parts
        numbers = ascii_int(version), ascii_int(line)
        moment = _finite(at)
        if moment is not None and numbers[0] is not None and numbers[1] is not None:
            return moment, order_id, numbers[0], numbers[1]
    raise invalid("cursor", "not a cursor from this API")


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 <= value < 10**11 else None


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus metrics of this process (of every HTTP process under `serve --workers N`)."""
    registry = request.app.state.container.metrics.exposed
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
