"""The adapter's status mapping, against a fake of the external PSP (httpx MockTransport)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from adapters.psp.simulator import HttpPSP, map_status
from domain.psp import (
    AuthorizeRequest,
    Inquiry,
    PSPConnectionLost,
    PSPRateLimited,
    PSPRejected,
    PSPServerError,
    PSPStatus,
    PSPTimeout,
    PSPUnavailable,
)

REQUEST = AuthorizeRequest("key-1", "order-1", 1000, "EUR", "pm_card_visa", capture=True)
PAYMENT = {"id": "pay_1", "status": "captured", "amount": 1000, "currency": "EUR"}


def psp(handler: Callable[[httpx.Request], httpx.Response]) -> HttpPSP:
    return HttpPSP("http://psp.test", timeout_s=1.0, transport=httpx.MockTransport(handler))


def test_a_success_becomes_a_frozen_result_and_sends_the_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=PAYMENT)

    result = psp(handler).authorize(REQUEST)
    assert (result.psp_reference, result.status, result.amount) == (
        "pay_1",
        PSPStatus.CAPTURED,
        1000,
    )
    assert seen[0].headers["Idempotency-Key"] == "key-1"


def test_a_decline_is_a_result_not_an_exception() -> None:
    body = PAYMENT | {"status": "declined", "decline_code": "card_declined"}
    result = psp(lambda r: httpx.Response(200, json=body)).authorize(REQUEST)
    assert result.status == PSPStatus.DECLINED and result.decline_code == "card_declined"


def raising(error: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    return handler


@pytest.mark.parametrize(
    ("handler", "expected", "processed"),
    [
        (raising(httpx.ConnectError("refused")), PSPUnavailable, False),
        (raising(httpx.ReadTimeout("slow")), PSPTimeout, None),
        (raising(httpx.RemoteProtocolError("dropped")), PSPConnectionLost, None),
        (lambda r: httpx.Response(429, headers={"Retry-After": "3"}), PSPRateLimited, False),
        (
            lambda r: httpx.Response(503, json={"error": {"processed": False}}),
            PSPUnavailable,
            False,
        ),
        (lambda r: httpx.Response(503, json={"error": {}}), PSPServerError, None),
        (lambda r: httpx.Response(500, text="oops"), PSPServerError, None),
        (lambda r: httpx.Response(200, text="not json"), PSPServerError, None),
        (lambda r: httpx.Response(200, json={"id": "pay_1"}), PSPServerError, None),
    ],
)
def test_outages_say_whether_the_request_was_processed(
    handler: Callable[[httpx.Request], httpx.Response], expected: type, processed: bool | None
) -> None:
    with pytest.raises(expected) as error:
        psp(handler).authorize(REQUEST)
    assert getattr(error.value, "processed", "missing") is processed


def test_retry_after_is_read_from_a_429() -> None:
    with pytest.raises(PSPRateLimited) as error:
        psp(lambda r: httpx.Response(429, headers={"Retry-After": "3"})).authorize(REQUEST)
    assert error.value.retry_after_s == 3


def test_other_4xx_are_rejections_never_retried_blindly() -> None:
    with pytest.raises(PSPRejected) as error:
        psp(lambda r: httpx.Response(409, json={"error": {"type": "invalid_state"}})).authorize(
            REQUEST
        )
    assert error.value.status_code == 409


def test_an_inquiry_404_means_the_request_never_arrived() -> None:
    inquiry = Inquiry("key-1", "authorize", None, 100, "EUR")
    assert psp(lambda r: httpx.Response(404, json={})).inquire(inquiry) is None


def test_status_mapping_treats_partial_refunds_as_refunds() -> None:
    assert map_status("partially_refunded") == PSPStatus.REFUNDED
    assert map_status("voided") == PSPStatus.VOIDED
