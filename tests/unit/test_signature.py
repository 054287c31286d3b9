from __future__ import annotations

import pytest

from adapters.psp.signature import InvalidSignature, sign, verify

SECRET = "whsec_test"
BODY = b'{"id":"evt_1"}'


def test_a_fresh_signature_verifies() -> None:
    verify(SECRET, sign(SECRET, BODY, 1_000), BODY, now=1_100)


@pytest.mark.parametrize(
    ("header", "body", "now", "reason"),
    [
        (None, BODY, 1_000, "malformed"),
        ("t=1000", BODY, 1_000, "malformed"),
        ("v1=abc", BODY, 1_000, "malformed"),
        (sign(SECRET, BODY, 1_000), BODY + b" ", 1_000, "does not match"),
        (sign("other", BODY, 1_000), BODY, 1_000, "does not match"),
        (sign(SECRET, BODY, 1_000), BODY, 1_301, "tolerance"),
        (sign(SECRET, BODY, 1_000), BODY, 699, "tolerance"),
    ],
)
def test_forged_replayed_or_malformed_signatures_are_rejected(
    header: str | None, body: bytes, now: int, reason: str
) -> None:
    with pytest.raises(InvalidSignature, match=reason):
        verify(SECRET, header, body, now=now)


def test_no_secret_verifies_nothing() -> None:
    with pytest.raises(InvalidSignature, match="no webhook secret"):
        verify("", sign("", BODY, 1_000), BODY, now=1_000)


def test_any_of_several_v1_signatures_may_match_during_secret_rotation() -> None:
    header = f"{sign('old', BODY, 1_000)},v1={sign(SECRET, BODY, 1_000).split('v1=')[1]}"
    verify(SECRET, header, BODY, now=1_000)
