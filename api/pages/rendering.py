"""HTML rendering: the Jinja2 environment (autoescaped), security headers, friendly error pages,
and a route class that turns every failure of an HTML route into a page (never JSON, never 500
for bad input)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

import jinja2
from eventsourcing.persistence import PersistenceError
from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from api.limits import BodyTooLarge
from api.problems import Problem
from domain.errors import DomainError, IllegalTransition, OrderNotFound
from domain.inputs import find_unstorable
from domain.money import format_amount

log = logging.getLogger("payments.pages")
TEMPLATES = Path(__file__).parents[1] / "templates"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
MAX_FORM_FIELDS = 20


def utc(value: datetime | float | str | None) -> str:
    """A time as `2024-05-01 14:03:22 UTC`."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, tz=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    """A short duration in words: `42 s`, `3 min`, `2 h 5 min`, `6 d 23 h`."""
    if seconds < 10 and seconds != int(seconds):
        return f"{max(0.0, seconds):.1f} s"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters |= {"money": format_amount, "utc": utc, "duration": duration}


def render(
    name: str,
    context: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A template as an HTML response with the security headers."""
    html = ENV.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS | dict(headers or {}))


def error_page(status: int, message: str, *, title: str | None = None) -> HTMLResponse:
    """A friendly error page; `message` is ours, never the request's input."""
    heading = title or HTTPStatus(status).phrase
    return render("error.html", {"heading": heading, "message": message}, status)


def redirect(url: str) -> RedirectResponse:
    """303 See Other: after a form post, or to the sign-in page."""
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


class Redirect(Exception):
    """Raise from a dependency to answer with a redirect (e.g. to sign in)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


NOT_FOUND = "We could not find this page. Please check the link you were given."


def page_for(exc: Exception) -> Response | None:
    """The HTML answer for an exception raised by an HTML route, if it is an expected one."""
    if isinstance(exc, Redirect):
        return redirect(exc.url)
    if isinstance(exc, DomainError):
        return _domain_page(exc)
    if isinstance(exc, RequestValidationError):
        return error_page(400, "Part of this address is not valid. Please check the link.")
    if isinstance(exc, Problem):
        return error_page(exc.status, exc.detail)
    if isinstance(exc, PersistenceError):
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_page(503, "We cannot reach our database right now. Please try again soon.")
    return None


def _domain_page(exc: DomainError) -> Response:
    if isinstance(exc, OrderNotFound):
        return error_page(404, NOT_FOUND, title="Not found")
    if isinstance(exc, IllegalTransition):
        return error_page(409, exc.message, title="That cannot be done now")
    return error_page(422, exc.message, title="Please check the form")


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class HtmlRoute(APIRoute):
    """An APIRoute whose failures become friendly HTML pages instead of problem+json."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def html_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except BodyTooLarge:
                raise  # the size limit's own: it answers 413 in place of any page (api/limits)
            except Exception as exc:  # every other failure of an HTML route becomes a page
                page = page_for(exc)
                if page is None:
                    log.error("unexpected error on %s", request.url.path, exc_info=exc)
                    page = error_page(500, "Something went wrong on our side. Please try again.")
                return page

        return html_handler


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form body (the first value of each field); no multipart dependency."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Problem(415, "unsupported-media-type", "Please submit the form from the page.")
    try:
        text = (await request.body()).decode("utf-8")
        parsed = parse_qs(
            text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="strict"
        )
    except UnicodeDecodeError:
        raise Problem(400, "bad-form", "The form was not sent as UTF-8.") from None
    except ValueError:
        raise Problem(400, "bad-form", "The form had too many fields.") from None
    fields = {name: values[0] for name, values in parsed.items()}
    where = find_unstorable(fields)
    if where is not None:
        raise Problem(400, "bad-form", f"The field {where!r} holds characters we cannot store.")
    return fields


Form = Annotated[dict[str, str], Depends(form_fields)]


def same_origin(request: Request) -> bool:
    """False for a form posted from another site, when the browser says where it came from
    (Sec-Fetch-Site, Origin; pages send Referrer-Policy: same-origin so Origin is never 'null')."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")
