"""Fuzzing our own boundaries: text over the full Unicode range (surrogates and control
characters included) and integers far beyond 64 bits, through the API, the webhook route,
the dashboard's forms and the PSP client's answer parsing.

Whatever comes in, the answer is a 4xx or a harmless store, never a 5xx; afterwards the
projection runner still reaches the head of the log and the audit passes, on each store.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.psp.signature import HEADER, sign
from adapters.psp.simulator import HttpPSP
from api.main import create_app
from api.threaded_server import ThreadedServer
from bootstrap.composition import Container, build
from bootstrap.migrate import migrate
from bootstrap.settings import Settings
from domain.inputs import find_unstorable
from domain.money import MAX_AMOUNT
from domain.psp import AuthorizeRequest, PSPOutage, PSPRejected
from projections.audit import Auditor
from tests.conftest import STORES, new_store_url
from tests.integration.conftest import FAST

CHECKOUT, OPS, SECRET = "fuzz-checkout-key", "fuzz-ops-key-0001", "fuzz-webhook-secret-0123"
EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
wild_text = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=30),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "\udfff x", "²", "١٢", "\ufeff", "\u202e"]),
)
wild_int = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, MAX_AMOUNT + 1, 0, -1]),
)
wild = st.one_of(wild_text, wild_int, st.none(), st.booleans(), st.floats())


@dataclass
class Fuzz:
    http: httpx.Client
    container: Container


@pytest.fixture(scope="module", params=STORES)
def fuzz(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    simulator_server: ThreadedServer,
) -> Iterator[Fuzz]:
    url = new_store_url(request, request.param, tmp_path_factory.mktemp("fuzz"))
    keys = f"checkout:{CHECKOUT},ops:{OPS}"
    config = Settings(database_url=url, api_keys=keys, webhook_secret=SECRET, **FAST)
    migrate(config)
    container = build(config, psp_url=simulator_server.url)
    server = ThreadedServer(create_app(container)).start()
    with httpx.Client(base_url=server.url, timeout=10, follow_redirects=False) as http:
        yield Fuzz(http, container)
    server.stop()
    container.close()


def as_(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())}


def post_json(http: httpx.Client, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    """JSON as a hostile client sends it: unpaired surrogates as \\u escapes, big integers."""
    content = json.dumps(body, ensure_ascii=True).encode()
    return http.post(path, content=content, headers={**headers, "Content-Type": "application/json"})


def escaped(text: str) -> str:
    """Percent-encoded UTF-8, unpaired surrogates included (as the bytes a client can send)."""
    return quote_from_bytes(text.encode("utf-8", "surrogatepass"), safe="")


def still_healthy(fuzz: Fuzz) -> None:
    """The runner reaches the head of the log, nothing is quarantined, and the audit passes."""
    fuzz.container.runner.catch_up()
    head, position = fuzz.container.runner.lag()
    assert position == head
    report = Auditor(fuzz.container.runner.log, fuzz.container.app.config.timing).run()
    assert report.ok, report.violations


def no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith(
            ("application/problem+json", "text/html")
        )


def test_checkout_bodies(fuzz: Fuzz) -> None:
    fields = st.fixed_dictionaries(
        {},
        optional={
            "buyer_id": wild,
            "currency": wild,
            "payment_method": wild,
            "seller_id": wild,
            "sku": wild,
            "quantity": wild,
            "unit_amount": wild,
        },
    )

    @EXAMPLES
    @given(fields)
    def attempt(changes: dict[str, Any]) -> None:
        item = {"seller_id": "s1", "sku": "mug", "quantity": 1, "unit_amount": 1200}
        item |= {k: v for k, v in changes.items() if k in item}
        cart = {"buyer_id": "b1", "currency": "EUR", "payment_method": "pm_card_visa"}
        cart |= {k: v for k, v in changes.items() if k in cart} | {"items": [item]}
        no_server_error(post_json(fuzz.http, "/v1/checkouts", cart, as_(CHECKOUT)))

    attempt()
    still_healthy(fuzz)


def test_operator_notes_and_query_values(fuzz: Fuzz) -> None:
    order = post_json(
        fuzz.http,
        "/v1/checkouts",
        {
            "buyer_id": "b1",
            "currency": "EUR",
            "payment_method": "pm_card_visa",
            "items": [{"seller_id": "s1", "sku": "mug", "quantity": 1, "unit_amount": 1200}],
        },
        as_(CHECKOUT),
    ).json()

    @EXAMPLES
    @given(wild_text, wild_text, wild_text)
    def attempt(note: str, operator: str, query: str) -> None:
        body = {"outcome": "captured", "note": note, "operator": operator}
        path = f"/v1/payment-orders/{order['id']}/resolve"
        no_server_error(post_json(fuzz.http, path, body, as_(OPS)))
        value = escaped(query)
        for name in ("cursor", "buyer_id", "status"):
            no_server_error(fuzz.http.get(f"/v1/payment-orders?{name}={value}", headers=as_(OPS)))
        for entries in (f"account={value}", f"account=x&cursor={escaped(query[:150])}"):
            no_server_error(fuzz.http.get(f"/v1/ledger/entries?{entries}", headers=as_(OPS)))

    attempt()
    still_healthy(fuzz)


def test_signed_webhooks(fuzz: Fuzz) -> None:
    order_id = uuid.uuid4()
    payment = st.fixed_dictionaries(
        {
            "id": wild,
            "status": st.one_of(st.sampled_from(["captured", "declined", "authorized"]), wild),
            "amount": wild,
            "currency": st.one_of(st.just("EUR"), wild),
            "idempotency_key": st.one_of(st.just(f"{order_id}:authorize:1"), wild),
        },
        optional={"decline_code": wild, "decline_message": wild},
    )

    @EXAMPLES
    @given(payment, wild)
    def attempt(obj: dict[str, Any], event_id: Any) -> None:
        body = json.dumps(
            {"id": event_id, "type": "payment.captured", "data": {"object": obj}}
        ).encode()
        headers = {HEADER: sign(SECRET, body, int(time.time())), "Content-Type": "application/json"}
        answer = fuzz.http.post("/v1/webhooks/psp", content=body, headers=headers)
        no_server_error(answer)
        assert answer.status_code in (200, 400)

    attempt()
    still_healthy(fuzz)


def test_dashboard_forms(fuzz: Fuzz) -> None:
    signed_in = fuzz.http.post("/dashboard/sign-in", data={"api_key": OPS})
    cookie = {"payments_session": signed_in.cookies["payments_session"]}
    page = fuzz.http.get("/dashboard", cookies=cookie)
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found
    csrf = found.group(1)

    @EXAMPLES
    @given(wild_text, wild_text)
    def attempt(note: str, key: str) -> None:
        def form(fields: dict[str, str]) -> bytes:
            return "&".join(f"{name}={escaped(value)}" for name, value in fields.items()).encode()

        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        resolve = form({"outcome": "captured", "note": note, "csrf": csrf})
        path = f"/dashboard/orders/{uuid.uuid4()}/resolve"
        no_server_error(fuzz.http.post(path, content=resolve, headers=headers, cookies=cookie))
        sign_in = form({"api_key": key})
        no_server_error(fuzz.http.post("/dashboard/sign-in", content=sign_in, headers=headers))

    attempt()
    still_healthy(fuzz)


class Answers:
    """A PSP whose next answer the test writes: bodies no real PSP should send."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.server = ThreadedServer(
            Starlette(routes=[Route("/v1/payments", self.answer, methods=["POST"])])
        ).start()

    async def answer(self, request: Request) -> Response:
        return Response(self.body, media_type="application/json")


def test_psp_answers_we_could_not_store_are_outages() -> None:
    psp_answers = Answers()
    psp = HttpPSP(psp_answers.server.url, 2.0)
    request = AuthorizeRequest("k", "ref", 1200, "EUR", "pm_card_visa", True)
    bodies = st.fixed_dictionaries(
        {},
        optional={
            "id": wild,
            "status": st.one_of(st.sampled_from(["captured", "declined", "processing"]), wild),
            "amount": wild,
            "currency": st.one_of(st.just("EUR"), wild),
            "decline_code": wild,
            "decline_message": wild,
        },
    )

    @EXAMPLES
    @given(bodies)
    def attempt(body: dict[str, Any]) -> None:
        psp_answers.body = json.dumps(body, ensure_ascii=True).encode()
        try:
            result = psp.authorize(request)
        except (PSPOutage, PSPRejected):
            return
        assert find_unstorable(vars(result)) is None
        assert 0 <= result.amount <= MAX_AMOUNT

    try:
        attempt()
    finally:
        psp.close()
        psp_answers.server.stop()
