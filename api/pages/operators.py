"""The operators' dashboard: sign-in, the failure board, an order's audit trail, and resolving
manual reviews. Sessions and CSRF tokens: api.pages.sessions."""

from __future__ import annotations

import time
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from adapters import revocations
from api.pages import sessions
from api.pages.board import BREAK_RESOLUTIONS, board, outcome_choices
from api.pages.buyer_view import sellers
from api.pages.rendering import Form, HtmlRoute, Redirect, error_page, redirect, render, same_origin
from api.pages.text import explain, status_sentence
from api.pages.timeline import timeline
from api.pages.tokens import status_link
from bootstrap.composition import Container
from domain.errors import OrderNotFound
from projections.documents import order_document

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
SIGN_IN = "/dashboard/sign-in"
STUCK_AFTER_S = 120.0


def container_of(request: Request) -> Container:
    """The running container."""
    container: Container = request.app.state.container
    return container


def current_operator(request: Request) -> sessions.Operator:
    """The signed-in operator; anyone else is sent to the sign-in page."""
    settings = container_of(request).settings
    if settings.development_mode:
        return sessions.development_operator()
    cookie = request.cookies.get(sessions.COOKIE)
    operator = sessions.operator_for(settings, cookie, time.time())
    if operator is None or _revoked(request, operator):
        raise Redirect(SIGN_IN)
    return operator


def _revoked(request: Request, operator: sessions.Operator) -> bool:
    return operator.session is not None and revocations.is_revoked(
        container_of(request).db, operator.session[0]
    )


Op = Annotated[sessions.Operator, Depends(current_operator)]


@router.get(SIGN_IN)
def sign_in_page(request: Request) -> Response:
    """The sign-in form (development mode needs none)."""
    if container_of(request).settings.development_mode:
        return redirect("/dashboard")
    return render("sign_in.html", {"error": None})


@router.post(SIGN_IN)
def sign_in(request: Request, form: Form) -> Response:
    """Check an ops key posted in the form body; on success set the session cookie."""
    settings = container_of(request).settings
    if settings.development_mode:
        return redirect("/dashboard")
    if not same_origin(request):
        return error_page(403, "Please sign in from this site's own sign-in page.")
    cookie = sessions.sign_in(settings, form.get("api_key", ""), time.time())
    if cookie is None:
        error = "That key is not an operator key. Check it and try again."
        return render("sign_in.html", {"error": error}, status=401)
    return _with_session(redirect("/dashboard"), cookie, secure=request.url.scheme == "https")


def _with_session(response: Response, cookie: str, *, secure: bool) -> Response:
    """Set the session cookie: HttpOnly, SameSite=Strict, only for /dashboard."""
    response.set_cookie(
        sessions.COOKIE,
        cookie,
        max_age=sessions.TTL_S,
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    return response


@router.post("/dashboard/sign-out")
def sign_out(request: Request, operator: Op, form: Form) -> Response:
    """End the session (the form carries the CSRF token)."""
    if not sessions.csrf_matches(operator, form.get("csrf")):
        return error_page(403, "This form has expired. Please reload the page and try again.")
    if operator.session is not None:  # the cookie stays valid until revoked server-side
        mac, expires = operator.session
        revocations.revoke(container_of(request).db, mac, expires, time.time())
    response = redirect(SIGN_IN)
    response.delete_cookie(sessions.COOKIE, path="/dashboard", httponly=True, samesite="strict")
    return response


@router.get("/dashboard")
def dashboard_page(
    request: Request,
    operator: Op,
    stuck_after_s: Annotated[float, Query(gt=0, le=7 * 24 * 3600)] = STUCK_AFTER_S,
    window_h: Annotated[int, Query(ge=1, le=7 * 24)] = 24,
) -> Response:
    """Failures over time, attempts by status, stuck orders, the review queue, PSP health
    and projection lag."""
    now = time.time()
    context = board(container_of(request), now, stuck_after_s, window_h)
    context |= {"operator": operator, "stuck_after_s": stuck_after_s, "window_h": window_h}
    return render("dashboard.html", context)


def _order_id(order_id: str) -> UUID:
    try:
        return UUID(order_id)
    except ValueError:
        raise OrderNotFound("no such payment order") from None


@router.get("/dashboard/orders/{order_id}")
def order_page(order_id: str, request: Request, operator: Op, resolved: bool = False) -> Response:
    """One order's audit trail: every event, oldest first, in words."""
    container = container_of(request)
    order = container.app.get_order(_order_id(order_id))
    document = order_document(order)
    attempts = [
        a | {"explanation": explain(a["failure_code"], declined=a["status"] == "declined")}
        for a in document["attempts"]
    ]
    context = {
        "operator": operator,
        "order": document,
        "status_words": status_sentence(document["status"]).headline,
        "attempts": attempts,
        "sellers": sellers(document),
        "events": timeline(container.app, order.id, order.currency),
        "review": order.review,
        "outcomes": outcome_choices(order.review),
        "status_url": status_link(order.id, container.settings),
        "resolved": resolved,
    }
    return render("order.html", context)


@router.post("/dashboard/reconciliation/breaks/{break_id}/resolve")
def resolve_break(break_id: str, request: Request, operator: Op, form: Form) -> Response:
    """Record an operator's finding for a reconciliation break, as the signed-in identity."""
    if not sessions.csrf_matches(operator, form.get("csrf")) or not same_origin(request):
        return error_page(403, "This form has expired. Please reload the page and try again.")
    resolution, note = form.get("resolution", ""), form.get("note", "").strip()
    if resolution not in dict(BREAK_RESOLUTIONS):
        return error_page(422, "Please choose what you found.", title="Finding needed")
    if not note or len(note) > 2000:
        return error_page(422, "Please write a note of 1 to 2000 characters.", title="Note needed")
    container_of(request).reconciliation.resolve_break(
        break_id, resolution, note, operator.client_id
    )
    return redirect("/dashboard?break_resolved=true#reconciliation-title")


@router.post("/dashboard/orders/{order_id}/resolve")
def resolve(order_id: str, request: Request, operator: Op, form: Form) -> Response:
    """Record an operator's finding for an order in manual review, as the signed-in identity."""
    if not sessions.csrf_matches(operator, form.get("csrf")) or not same_origin(request):
        return error_page(403, "This form has expired. Please reload the page and try again.")
    outcome, note = form.get("outcome", ""), form.get("note", "").strip()
    if not note or len(note) > 2000:
        return error_page(422, "Please write a note of 1 to 2000 characters.", title="Note needed")
    target = _order_id(order_id)
    container_of(request).app.resolve(target, outcome, note, operator.client_id)
    return redirect(f"/dashboard/orders/{target}?resolved=true")
