"""The simulator connector reads its own webhooks: verified first, then parsed."""

from __future__ import annotations

import json
import uuid

import pytest

from adapters.psp.signature import HEADER, sign
from adapters.psp.simulator_notifications import SimulatorNotifications
from domain.ids import psp_key
from domain.psp import MalformedNotification, PSPStatus, UnverifiedNotification

SECRET = "whsec-test"
NOW = 1_800_000_000


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {HEADER: sign(secret, body, NOW)}


def event(key: str) -> bytes:
    payment = {"id": "pay_1", "status": "captured", "amount": 2550, "currency": "EUR"}
    return json.dumps(
        {
            "id": "evt_1",
            "type": "payment.captured",
            "data": {"object": {**payment, "idempotency_key": key}},
        }
    ).encode()


def test_a_signed_notification_names_our_call_and_its_result() -> None:
    order_id = uuid.uuid4()
    body = event(psp_key(order_id, "authorize", 1))
    parsed = SimulatorNotifications(SECRET).parse(body, signed(body), NOW)
    assert parsed.call == (order_id, "authorize", 1)
    assert parsed.result is not None and parsed.result.status == PSPStatus.CAPTURED
    assert (parsed.event_id, parsed.event_type) == ("evt_1", "payment.captured")


def test_nothing_is_parsed_before_the_signature_is_verified() -> None:
    garbage = b"\xff not json"
    with pytest.raises(UnverifiedNotification):
        SimulatorNotifications(SECRET).parse(garbage, signed(garbage, "other"), NOW)
    with pytest.raises(MalformedNotification):
        SimulatorNotifications(SECRET).parse(garbage, signed(garbage), NOW)


def test_someone_elses_payment_is_not_ours() -> None:
    body = event("their-own-key")
    assert SimulatorNotifications(SECRET).parse(body, signed(body), NOW).call is None
