"""GET /healthz: the process is up, the event store answers, and the projections move."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import App
from api.problems import Problem, responses

router = APIRouter(tags=["operations"])


@router.get("/healthz", responses=responses(503))
def healthz(request: Request, app: App) -> dict[str, str]:
    """200 when the event store answers a query; 503 when it does not, or when this
    process's projection runner has been failing (read models would go stale)."""
    app.recorder.max_notification_id()
    stuck = request.app.state.container.projections_stuck()
    if stuck is not None:
        detail = f"the projection runner has made no progress for {int(stuck)} s"
        raise Problem(503, "projections-stuck", detail, headers={"Retry-After": "5"})
    return {"status": "ok"}
