"""A store written by an earlier version reads back the same, forever.

`tests/fixtures/store_v1` was written by the version before event names became explicit
(events then were stored under module paths such as `domain.order_base:OrderBase.Placed`),
`store_v2` by the version that gave each event its name (`PaymentOrder.Placed`); each with
what that version's API answered about it. Today's code must read every stored event,
rebuild the read models from them, and answer the same: a renamed or moved event without a
mapping fails here. New stores are added as the schema grows; none is ever removed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from bootstrap.composition import build
from bootstrap.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VERSIONS = ["v1", "v2"]
VARYING = {"events_per_second", "seconds"}
"""Audit figures that depend on the machine, not on the store."""


@pytest.fixture(scope="module", params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def expected(version: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (FIXTURES / f"store_{version}" / "expected.json").read_text()
    )
    return loaded


@pytest.fixture(scope="module")
def old_store(tmp_path_factory: pytest.TempPathFactory, version: str) -> str:
    """A copy of the old store, migrated and with every read model rebuilt by today's code."""
    work = tmp_path_factory.mktemp(f"store_{version}")
    shutil.copy(FIXTURES / f"store_{version}" / "payments.db", work / "payments.db")
    url = f"sqlite:///{work}/payments.db"
    for command in (["migrate"], ["projections", "rebuild"]):
        payments(url, *command)
    return url


def payments(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run our CLI, as an operator upgrading would."""
    env = {**os.environ, "PAYMENTS_DATABASE_URL": url, "PAYMENTS_LOG_FORMAT": "text"}
    cli = [sys.executable, "-c", "from cli.main import main; main()", *args]
    return subprocess.run(cli, env=env, capture_output=True, text=True, check=False, timeout=120)  # noqa: S603


def test_the_old_store_holds_every_event_type(expected: dict[str, Any]) -> None:
    types = {e["type"] for order in expected["events"].values() for e in order["events"]}
    assert len(types) == 22 and {"Placed", "CaptureRequested", "ManuallyResolved"} <= types


def test_orders_events_and_ledger_read_back_the_same(
    old_store: str, expected: dict[str, Any]
) -> None:
    container = build(Settings(database_url=old_store), with_psp=False)
    try:
        with TestClient(create_app(container)) as http:
            for order_id, document in expected["orders"].items():
                assert http.get(f"/v1/payment-orders/{order_id}").json() == document
                replayed = http.get(f"/v1/payment-orders/{order_id}?version={document['version']}")
                assert replayed.json() == document
                events = http.get(f"/v1/payment-orders/{order_id}/events").json()
                assert events == expected["events"][order_id]
            assert http.get("/v1/ledger/balances").json() == expected["ledger"]
    finally:
        container.close()


def test_the_audit_of_the_old_store_passes_as_before(
    old_store: str, expected: dict[str, Any]
) -> None:
    audited = payments(old_store, "audit", "--json")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    report = {k: v for k, v in json.loads(audited.stdout).items() if k not in VARYING}
    before = {k: v for k, v in expected["audit"].items() if k not in VARYING}
    # Read models added since that version have positions of their own; the rest agree.
    report["positions"] = {k: v for k, v in report["positions"].items() if k in before["positions"]}
    assert report == before
