"""HTML pages served by the API: the buyer's status page and the operators' dashboard.

Server-rendered Jinja2 (autoescaped) with a little vanilla JavaScript and CSS under
/static; nothing is fetched from another host.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.pages import buyer, operators
from api.pages.tokens import redact_access_logs

STATIC = Path(__file__).parents[1] / "static"


def install(api: FastAPI) -> None:
    """Add the pages' routes, the `status-link` API route and /static to the application."""
    for router in (buyer.links, buyer.buyer_api, buyer.pages, operators.router):
        api.include_router(router)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    redact_access_logs()
