"""No input produces a 5xx or a response that breaks the OpenAPI document.

Schemathesis generates a bounded number of valid and invalid requests per operation
(boundary values first) and sends them over real HTTP to the API on each store.
"""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from api.threaded_server import ThreadedServer
from bootstrap.composition import build
from bootstrap.migrate import migrate
from bootstrap.settings import Settings
from tests.conftest import STORES, new_store_url
from tests.integration.conftest import FAST

CHECKOUT_KEY, OPS_KEY = "schemathesis-checkout", "schemathesis-ops"
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    status_code_conformance,
]
config = schemathesis.Config.from_dict(
    {
        "generation": {
            "max-examples": 25,
            "mode": "all",
            "deterministic": True,
            "with-security-parameters": False,
        },
        "phases": {"coverage": {"enabled": True}, "stateful": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_dict(create_app(None).openapi(), config=config)


@pytest.fixture(scope="module", params=STORES)
def live_api(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    simulator_server: ThreadedServer,
) -> Iterator[str]:
    url = new_store_url(request, request.param, tmp_path_factory.mktemp("fuzz"))
    keys = f"checkout:{CHECKOUT_KEY},ops:{OPS_KEY}"
    settings = Settings(database_url=url, api_keys=keys, webhook_secret="w" * 16, **FAST)
    migrate(settings)
    container = build(settings, psp_url=simulator_server.url)
    container.start_projections()
    server = ThreadedServer(create_app(container)).start()
    yield server.url
    server.stop()
    container.close()


def key_for(path: str) -> str:
    ops_paths = ("/v1/dashboard", "/v1/ledger", "/resolve")
    return OPS_KEY if any(p in path for p in ops_paths) else CHECKOUT_KEY


@schema.parametrize()
@hypothesis.settings(deadline=None, derandomize=True, database=None)
def test_no_input_breaks_the_api(case: schemathesis.Case, live_api: str) -> None:  # type: ignore[type-arg]
    headers = {"Authorization": f"Bearer {key_for(case.path)}"}
    case.call_and_validate(base_url=live_api, headers=headers, checks=CHECKS)
