"""The pages' parts without a browser: capability tokens, sessions and CSRF, log redaction,
plain words for every status and code, and chart geometry."""

from __future__ import annotations

import logging
import uuid

import pytest
from prometheus_client import CollectorRegistry, Histogram
from pydantic import SecretStr

from api.pages import sessions, text, tokens
from api.pages.board import FAILING_AFTER_S, endpoint_row, endpoint_state, psp_latency
from api.pages.charts import HEIGHT, WIDTH, slot_starts, stacked
from api.pages.timeline import SENTENCES, describe
from bootstrap.settings import Settings
from domain.statuses import AttemptStatus, OrderStatus

OPS = "ops-key-0123456789"
NOW = 1_800_000_000.0


def settings(**changes: str) -> Settings:
    return Settings(
        api_keys=SecretStr(changes.get("keys", f"ops:{OPS},checkout:checkout-key-1")),
        webhook_secret=SecretStr(changes.get("secret", "webhook-secret")),
    )


def test_a_status_token_opens_one_order_under_one_secret() -> None:
    order, other = uuid.uuid4(), uuid.uuid4()
    token = tokens.status_token(order, settings())
    assert tokens.token_matches(order, token, settings())
    assert not tokens.token_matches(other, token, settings())
    assert not tokens.token_matches(order, token, settings(secret="rotated"))
    for wrong in (None, "", token.upper(), token[:-1], "z" * 64):
        assert not tokens.token_matches(order, wrong, settings())
    assert tokens.status_link(order, settings()) == f"/status/{order}?token={token}"


def test_without_a_webhook_secret_links_use_the_process_secret() -> None:
    order = uuid.uuid4()
    token = tokens.status_token(order, settings(secret=""))
    assert token != tokens.status_token(order, settings())
    assert tokens.token_matches(order, token, settings(secret=""))


def test_tokens_never_reach_the_access_log() -> None:
    line = "/status/abc?token=deadbeef&x=1"
    assert tokens.redact(line) == "/status/abc?token=[redacted]&x=1"
    record = logging.makeLogRecord(
        {"msg": '%s - "%s %s"', "args": ("127.0.0.1", "GET", "/status/a/state?token=beef")}
    )
    assert tokens.RedactTokens().filter(record)
    assert "beef" not in record.getMessage()


def test_a_session_cookie_is_signed_expires_and_dies_with_its_key() -> None:
    cookie = sessions.sign_in(settings(), OPS, NOW)
    assert cookie is not None and OPS not in cookie
    operator = sessions.operator_for(settings(), cookie, NOW + 60)
    assert operator is not None and operator.client_id == cookie.split("|")[0]
    client, expiry, mac = cookie.split("|")
    for forged in (
        f"{client}|{int(expiry) + 3600}|{mac}",
        f"{client}|{expiry}|{'0' * 64}",
        f"key_someone_else|{expiry}|{mac}",
        "",
        "garbage",
    ):
        assert sessions.operator_for(settings(), forged, NOW) is None
    assert sessions.operator_for(settings(), cookie, NOW + sessions.TTL_S + 1) is None
    rotated = settings(keys="ops:another-ops-key-1")
    assert sessions.operator_for(rotated, cookie, NOW) is None


def test_only_ops_keys_sign_in_and_csrf_tokens_belong_to_their_session() -> None:
    assert sessions.sign_in(settings(), "checkout-key-1", NOW) is None
    assert sessions.sign_in(settings(), "wrong", NOW) is None
    first = sessions.operator_for(settings(), sessions.sign_in(settings(), OPS, NOW), NOW)
    second = sessions.operator_for(settings(), sessions.sign_in(settings(), OPS, NOW + 1), NOW)
    assert first is not None and second is not None
    assert first.csrf != second.csrf
    assert sessions.csrf_matches(first, first.csrf)
    assert not sessions.csrf_matches(first, second.csrf)
    assert not sessions.csrf_matches(first, None)
    development = sessions.development_operator()
    assert development.development and sessions.csrf_matches(development, development.csrf)


def test_every_status_and_code_has_plain_words() -> None:
    assert set(text.STATUS) == set(OrderStatus)
    assert set(text.ATTEMPT) == set(AttemptStatus)
    for code in ("card_declined", "insufficient_funds", "psp_timeout", "amount_mismatch"):
        assert text.explain(code) == text.FAILURE[code]
    assert text.explain("outcome_unknown: no answer") == text.FAILURE["outcome_unknown"]
    assert text.explain("inquiry_psp_timeout") == text.FAILURE["psp_timeout"]
    assert text.explain("brand_new_code", declined=True) == text.DECLINED_FALLBACK
    assert text.explain("brand_new_code") == text.FAILURE_FALLBACK
    assert text.explain(None) == ""


@pytest.mark.parametrize("kind", sorted(SENTENCES))
def test_every_event_reads_as_a_sentence(kind: str) -> None:
    data = {"amount": 1234, "code": "card_declined", "attempt": 1, "kind": "authorize"}
    sentence = describe(kind, data, "EUR")
    assert sentence and "{" not in sentence and "}" not in sentence


def test_a_chart_stays_inside_its_box() -> None:
    starts = slot_starts(NOW, 3600, 24)
    rows = [
        {"hour": starts[-1], "code": "card_declined", "count": 3},
        {"hour": starts[-1], "code": "psp_timeout", "count": 2},
        {"hour": starts[0], "code": "psp_timeout", "count": 1},
        {"hour": starts[0] - 3600, "code": "psp_timeout", "count": 9},  # outside the window
    ]
    chart = stacked(rows, "hour", starts, 3600, "%H:00")
    assert len(chart.bars) == 3
    assert [t.label for t in chart.y_ticks] == ["0", "3", "6"]
    for bar in chart.bars:
        assert bar.x >= 0 and bar.x + bar.width <= WIDTH
        assert bar.y >= 0 and bar.y + bar.height <= HEIGHT
    assert [(name, total) for _, name, total in chart.legend] == [
        ("card_declined", 3),
        ("psp_timeout", 3),
    ]


def test_buckets_off_the_chart_are_left_out() -> None:
    starts = slot_starts(NOW, 60, 15)
    rows = [
        {"minute": starts[-1], "code": "psp_timeout", "count": 1},
        {"minute": starts[-1] + 60, "code": "psp_timeout", "count": 5},
    ]
    [bar] = stacked(rows, "minute", starts, 60, "%H:%M").bars
    assert bar.label.endswith("1 psp_timeout")


def test_psp_latency_reads_the_prometheus_histogram() -> None:
    histogram = Histogram("t_seconds", "test", ["operation"], registry=CollectorRegistry())
    for seconds in (0.02, 0.03, 0.2, 4.0):
        histogram.labels("authorize").observe(seconds)
    [row] = psp_latency(histogram)
    assert row["operation"] == "authorize" and row["calls"] == 4
    assert row["mean_s"] == pytest.approx(1.0625)
    assert row["p95"] == "≤ 5 s"
    assert psp_latency(Histogram("u_seconds", "t", registry=CollectorRegistry())) == []


def test_a_webhook_endpoint_stands_out_when_disabled_or_failing_for_a_while() -> None:
    assert endpoint_state("enabled", None, NOW) == ("enabled", "tone-ok")
    assert endpoint_state("enabled", NOW - 10, NOW) == ("enabled, retrying", "tone-wait")
    long_ago = NOW - FAILING_AFTER_S
    assert endpoint_state("enabled", long_ago, NOW) == ("enabled, failing", "tone-bad")
    assert endpoint_state("disabled", None, NOW) == ("disabled", "tone-bad")
    health = {
        "id": "we_1",
        "client_id": "key_abc",
        "url": "https://hooks.example/x",
        "status": "enabled",
        "disabled_reason": None,
        "backlog": 3,
        "last_success": NOW - 125,
        "failing_since": None,
        "secret": "whsec_never_shown",  # were health() ever to return it
    }
    row = endpoint_row(health, NOW)
    assert "secret" not in row and "whsec_never_shown" not in repr(row)
    assert row["last_success"]["age_s"] == 125 and row["failing_since"] is None
    assert row["last_success"]["iso"].endswith("+00:00") and row["state"] == "enabled"
