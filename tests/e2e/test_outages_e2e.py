"""Crashes, outages, session ends and racing workers, end to end.

The stack here runs the API (with its in-process worker) and two more `payments worker`
processes, so every recovery below also races three workers on the same orders.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from domain.ids import order_id_for
from tests.e2e.conftest import STORES, Stack, start_stack, stop_stack

pytestmark = pytest.mark.e2e

SETTINGS = {
    "psp_timeout_s": "2",
    "stale_after_s": "1",
    "max_attempts": "100",
    "retry_max_s": "0.3",
    "session_ttl_s": "8",  # a simulator restarted on a loaded machine took over 4 s
    "reconcile_after_s": "1",
}
CART = {
    "buyer_id": "buyer-9",
    "currency": "USD",
    "items": [{"seller_id": "seller-a", "sku": "lamp", "quantity": 1, "unit_amount": 4999}],
    "payment_method": "pm_card_visa",
}


@pytest.fixture(scope="module", params=STORES)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    started = start_stack(
        request, tmp_path_factory.mktemp("outage"), request.param, workers=2, **SETTINGS
    )
    yield started
    stop_stack(started)


@pytest.fixture(autouse=True)
def sim(stack: Stack) -> httpx.Client:
    stack.simulator.post("/_control/reset").raise_for_status()
    stack.faults(webhook_events="async")
    return stack.simulator


def post(stack: Stack, key: str, **changes: Any) -> httpx.Response:
    return stack.api.post("/v1/checkouts", json=CART | changes, headers={"Idempotency-Key": key})


def order_for(key: str) -> str:
    return str(order_id_for("development", key))


def final(order: dict[str, Any]) -> bool:
    return bool(order["status"] != "processing")


def types(stack: Stack, order_id: str) -> list[str]:
    return [e["type"] for e in stack.events(order_id)]


def pay_at_the_psp_late(stack: Stack, order_id: str, *, capture: bool) -> None:
    """The PSP creates the first authorization after we gave it up (a delayed request)."""
    late = {
        "amount": 4999,
        "currency": "USD",
        "payment_method": "pm_card_visa",
        "capture": capture,
        "reference": order_id,
    }
    key = f"{order_id}:authorize:1"
    response = stack.simulator.post("/v1/payments", json=late, headers={"Idempotency-Key": key})
    assert response.status_code == 200


def test_connection_refused_is_retried_until_the_psp_is_back(stack: Stack) -> None:
    stack.processes["psp-sim"].stop()
    try:
        response = post(stack, str(uuid.uuid4()))
        assert response.status_code == 201
        order = response.json()
        assert order["attempts"][0]["failure_code"] == "psp_unavailable"
    finally:
        stack.restart("psp-sim")
    assert stack.wait_for(order["id"], final)["status"] == "succeeded"
    assert len(stack.held(order["id"])) == 1


@pytest.mark.parametrize(
    ("failpoint", "inquiry_found"), [("before_psp_call", False), ("after_psp_call", True)]
)
def test_a_process_killed_around_the_psp_call_leaves_work_the_worker_finishes(
    stack: Stack, failpoint: str, inquiry_found: bool
) -> None:
    stack.restart("api", failpoints=failpoint)
    key = str(uuid.uuid4())
    with pytest.raises(httpx.TransportError):
        post(stack, key)  # the API dies mid-request
    stack.restart("api", failpoints="")
    order_id = order_for(key)
    assert stack.wait_for(order_id, final)["status"] == "succeeded"
    inquiry = next(e for e in stack.events(order_id) if e["type"] == "OutcomeInquired")
    assert inquiry["data"]["found"] is inquiry_found  # inquiry first, then (only if absent) resend
    assert len(stack.held(order_id)) == 1
    replay = post(stack, key)
    assert replay.status_code == 200 and replay.json()["status"] == "succeeded"


def test_a_process_killed_during_the_psp_call_leaves_work_the_worker_finishes(stack: Stack) -> None:
    stack.faults(script=["timeout"], hang_ms=5000, webhook_events="none")
    key = str(uuid.uuid4())
    errors: list[Exception] = []

    def request() -> None:
        try:
            post(stack, key)
        except httpx.TransportError as error:
            errors.append(error)

    thread = threading.Thread(target=request)
    thread.start()
    time.sleep(0.7)  # the PSP has the request and is hanging
    stack.processes["api"].kill()
    thread.join()
    assert errors, "the API answered although it was killed"
    stack.restart("api")
    order_id = order_for(key)
    assert stack.wait_for(order_id, final)["status"] == "succeeded"
    assert "PSPRequestResent" not in types(stack, order_id)
    assert len(stack.held(order_id)) == 1


def test_the_session_ends_without_a_charge(stack: Stack) -> None:
    order = post(stack, str(uuid.uuid4()), payment_method="pm_card_declined").json()
    assert order["status"] == "requires_payment_method"
    expired = stack.wait_for(order["id"], lambda o: o["status"] == "expired", timeout_s=25)
    assert expired["attempts"][0]["status"] == "declined"
    assert stack.held(order["id"]) == []


@pytest.mark.parametrize(
    ("capture_method", "compensation"), [("manual", "voided"), ("automatic", "refunded")]
)
def test_an_authorization_discovered_after_the_session_is_compensated(
    stack: Stack, capture_method: str, compensation: str
) -> None:
    stack.faults(script=["error_before"] * 200, webhook_events="all")
    order = post(stack, str(uuid.uuid4()), capture_method=capture_method).json()
    expired = stack.wait_for(order["id"], lambda o: o["status"] == "expired", timeout_s=25)
    assert expired["attempts"][0]["failure_code"] == "session_expired"
    stack.faults(webhook_events="all")
    pay_at_the_psp_late(stack, order["id"], capture=capture_method == "automatic")
    done = stack.wait_for(
        order["id"],
        lambda o: (
            o["attempts"][0]["status"] in ("voided", "captured")
            and (compensation == "voided" or o["refunded_amount"] == 4999)
        ),
    )
    assert done["status"] == "expired"
    [payment] = stack.held(order["id"])
    assert payment["status"] == compensation


def test_three_workers_and_the_api_race_on_the_same_orders_without_double_charges(
    stack: Stack,
) -> None:
    stack.faults(
        script=["error_before", "lost_response", "error_after", "rate_limit"] * 3, retry_after_s=0
    )
    orders = [post(stack, str(uuid.uuid4())).json() for _ in range(12)]
    for order in orders:
        assert stack.wait_for(order["id"], final)["status"] == "succeeded"
        assert len(stack.held(order["id"])) == 1
    audit = stack.run("audit")
    assert audit.returncode == 0, audit.stdout.decode() + audit.stderr.decode()


def block_database(stack: Stack) -> Any:
    """Make the store refuse writes: lock SQLite, or close PostgreSQL to new connections and
    cut the API's. Returns how to undo it."""
    if stack.database_url.startswith("sqlite"):
        conn = sqlite3.connect(stack.database_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")

        def release() -> None:
            conn.execute("ROLLBACK")
            conn.close()

        return release
    base = stack.database_url.partition("?schema=")[0]
    admin_url, database = base.rsplit("/", 1)[0] + "/postgres", base.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
            "AND pid <> pg_backend_pid()",
            (database,),
        )

    def unblock() -> None:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')

    return unblock


def test_an_unavailable_database_is_a_clean_503_and_a_retry_completes(stack: Stack) -> None:
    key = str(uuid.uuid4())
    unblock = block_database(stack)
    try:
        response = post(stack, key)
    finally:
        unblock()
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["Retry-After"]
    assert "Traceback" not in response.text
    assert stack.charges() == []  # nothing was recorded, so the PSP was never called
    retried = post(stack, key)
    assert retried.status_code == 201, retried.text
    assert retried.json()["status"] == "succeeded"
    assert len(stack.held(retried.json()["id"])) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("stack", ["postgres"], indirect=True)  # SQLite has no connections to kill
def test_connections_killed_mid_request_leave_no_half_written_order(stack: Stack) -> None:
    stack.faults(latency_ms=600, webhook_events="none")
    key = str(uuid.uuid4())
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(post(stack, key)))
    thread.start()
    time.sleep(0.3)  # the write-ahead commit is done; the PSP call is under way
    base = stack.database_url.partition("?schema=")[0]
    with psycopg.connect(base, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (stack.processes["api"].env["PGAPPNAME"],),
        ).fetchone()
    thread.join()
    assert killed is not None and killed[0] > 0
    assert answers[0].status_code in (201, 503), answers[0].text
    order_id = order_for(key)
    assert stack.wait_for(order_id, final)["status"] == "succeeded"
    assert len(stack.held(order_id)) == 1


def test_an_authorization_nobody_told_us_about_is_found_by_reconciliation_and_voided(
    stack: Stack,
) -> None:
    stack.faults(script=["error_before"] * 200, webhook_events="none")
    order = post(stack, str(uuid.uuid4()), capture_method="manual").json()
    stack.wait_for(order["id"], lambda o: o["status"] == "expired", timeout_s=25)
    stack.faults(webhook_events="none")  # the PSP is back, and still sends nothing
    pay_at_the_psp_late(stack, order["id"], capture=False)
    done = stack.wait_for(order["id"], lambda o: o["attempts"][0]["status"] == "voided")
    assert done["status"] == "expired"
    assert "OutcomeInquired" in types(stack, order["id"])  # asked once more, no webhook needed
    [payment] = stack.held(order["id"])
    assert payment["status"] == "voided"
