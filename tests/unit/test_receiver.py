"""The test receiver of outbound webhooks (chaos/receiver.py) counts only real verification
failures: a delivery before it knows its secret is a 503 to retry, not a bad signature."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from standardwebhooks import Webhook
from starlette.testclient import TestClient

from chaos.receiver import app

SECRET = "whsec_" + base64.b64encode(b"a secret of 24 bytes ok!").decode()


def signed(body: str, secret: str = SECRET) -> dict[str, str]:
    now = datetime.now(tz=UTC)
    signature = Webhook(secret).sign("msg_1", now, body)
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


def test_deliveries_before_the_secret_are_retried_and_bad_ones_counted() -> None:
    client = TestClient(app())
    body = '{"type": "payment_order.succeeded"}'
    assert client.post("/hooks", content=body, headers=signed(body)).status_code == 503
    assert client.get("/_control").json() == {"received": [], "unverified": 0}
    assert client.put("/_control", json={"secret": SECRET}).status_code == 204
    assert client.post("/hooks", content=body, headers=signed(body)).status_code == 204
    other = "whsec_" + base64.b64encode(b"another secret, 24 bytes").decode()
    assert client.post("/hooks", content=body, headers=signed(body, other)).status_code == 400
    assert client.get("/_control").json() == {
        "received": [{"type": "payment_order.succeeded"}],
        "unverified": 1,
    }
