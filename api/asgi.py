"""The ASGI app for `payments serve --workers N`: each server process builds its own container.

The parent process (see cli.main.serve) has migrated the tables, started the simulator if
needed, and exported PAYMENTS_PSP_URL and PAYMENTS_WEBHOOK_SECRET for its children; it runs
the recovery worker and the projection runner itself, so children serve HTTP only.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from api.main import create_app
from bootstrap import logs, runtime
from bootstrap.composition import build
from bootstrap.settings import Settings


def create() -> FastAPI:
    """uvicorn factory (`api.asgi:create`); a spawned child configures its own logging."""
    settings = Settings()
    json_lines = os.environ.get("PAYMENTS_LOG_FORMAT", "json") != "text"
    logs.configure(json_lines=json_lines, access_log=settings.access_log)
    app = create_app(build(settings))
    runtime.settle_heap()
    return app
