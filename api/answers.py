"""Commands answer with the order's document, written once (projections.documents) and sent
as it is: the same bytes the read model stores, with no second validation pass."""

from __future__ import annotations

from fastapi import Response

from api.problems import Problem
from api.reads import POSITION_HEADER
from app.application import Written
from projections.documents import order_json

IN_FLIGHT = "a request with this Idempotency-Key is still waiting for the PSP; retry shortly"


def refuse_in_flight(written: Written, detail: str = IN_FLIGHT) -> None:
    """409 with Retry-After when a replayed key's first request still awaits the PSP."""
    if written.replayed and written.order.awaiting_psp:
        raise Problem(409, "request-in-flight", detail, headers={"Retry-After": "1"})


def answer(written: Written, status_code: int, **headers: str) -> Response:
    """The order a command wrote: `status_code` when the command did something, 200 when the
    Idempotency-Key had already done it, 409 while that first request awaits the PSP."""
    refuse_in_flight(written)
    if written.position is not None:
        headers[POSITION_HEADER] = str(written.position)
    return Response(
        order_json(written.order),
        status_code=200 if written.replayed else status_code,
        headers=headers,
        media_type="application/json",
    )
