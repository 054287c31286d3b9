"""GET /healthz: the process is up and the event store answers."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import App
from api.problems import responses

router = APIRouter(tags=["operations"])


@router.get("/healthz", responses=responses(503))
def healthz(app: App) -> dict[str, str]:
    """200 when the event store answers a query, 503 when it does not."""
    app.recorder.max_notification_id()
    return {"status": "ok"}
