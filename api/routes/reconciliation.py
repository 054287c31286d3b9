"""The reconciliation API (ops only): imported settlement batches, their breaks, and the
operator's audited resolution of a break (docs/reconciliation.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, StringConstraints

from api.auth import OpsCaller
from api.problems import responses
from api.schemas import Strict
from app.reconciliation import ReconciliationApp

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"])
BreakId = Annotated[
    str, Path(min_length=3, max_length=200, pattern=r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+:[0-9]+$")
]


class BatchOut(BaseModel):
    batch_id: str
    psp: str
    imported_at: str
    rows: int
    matched: int
    breaks: int
    open_breaks: dict[str, int]
    """Open breaks by class."""


class BatchesOut(BaseModel):
    batches: list[BatchOut]


class BreakOut(BaseModel):
    id: str
    batch_id: str
    psp: str
    kind: str
    class_: str = Field(serialization_alias="class")
    """auto_fixed, needs_operator or unexplained."""
    detail: str
    status: Literal["open", "resolved"]
    resolution: str | None
    note: str | None = None
    operator: str | None = None
    row: dict[str, Any]


class BreaksOut(BaseModel):
    breaks: list[BreakOut]


class ResolveBreakIn(Strict):
    """An operator's finding for a break, checked at the PSP. A break never changes an
    order's money: correcting an order is a separate command (refund, manual review)."""

    resolution: Literal["accepted", "written_off", "corrected_at_psp", "corrected_here"]
    note: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    operator: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None


def _app(request: Request) -> ReconciliationApp:
    app: ReconciliationApp = request.app.state.container.reconciliation
    return app


def break_out(found: dict[str, Any]) -> BreakOut:
    return BreakOut(
        id=found["id"],
        batch_id=found["batch_id"],
        psp=found["psp"],
        kind=found["kind"],
        class_=found["class"],
        detail=found["detail"],
        status=found["status"],
        resolution=found.get("resolution"),
        note=found.get("note"),
        operator=found.get("operator"),
        row=found["row_data"],
    )


@router.get("/batches", responses=responses(401, 403, 503))
async def batches(caller: OpsCaller, request: Request) -> BatchesOut:
    """Every imported settlement batch with its matched rows and open breaks by class."""
    found = await run_in_threadpool(_app(request).batches)
    return BatchesOut(batches=[BatchOut(**b.summary()) for b in found])


@router.get("/breaks", responses=responses(401, 403, 422, 503))
async def breaks(
    caller: OpsCaller,
    request: Request,
    status: Annotated[Literal["open", "resolved"] | None, Query()] = None,
) -> BreaksOut:
    """Breaks, open or resolved (all when no status is given)."""
    found = await run_in_threadpool(_app(request).breaks, status)
    return BreaksOut(breaks=[break_out(b) for b in found])


@router.post("/breaks/{break_id}/resolve", responses=responses(401, 403, 404, 409, 422, 503))
async def resolve_break(
    break_id: BreakId, body: ResolveBreakIn, caller: OpsCaller, request: Request
) -> BreakOut:
    """Record an operator's finding for a break (audited with who and why)."""
    operator = f"{body.operator} ({caller.client_id})" if body.operator else caller.client_id
    resolve = _app(request).resolve_break
    found = await run_in_threadpool(resolve, break_id, body.resolution, body.note, operator)
    return break_out(found)
