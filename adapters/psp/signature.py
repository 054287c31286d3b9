"""Webhook signatures: HMAC-SHA256 over "<t>.<raw body>", sent as `PSP-Signature: t=..,v1=..`."""

from __future__ import annotations

import hashlib
import hmac

from domain.inputs import ascii_int

HEADER = "PSP-Signature"
TOLERANCE_S = 300


class InvalidSignature(Exception):
    """The signature is missing, malformed, wrong, or outside the time tolerance."""


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value that signs `body` at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def verify(
    secret: str, header: str | None, body: bytes, now: float, tolerance_s: int = TOLERANCE_S
) -> None:
    """Raise InvalidSignature unless `header` signs `body` within the tolerance of `now`."""
    if not secret:
        raise InvalidSignature("no webhook secret is configured")
    timestamp, candidates = _parse(header or "")
    if abs(now - timestamp) > tolerance_s:
        raise InvalidSignature("the signature timestamp is outside the tolerance")
    expected = _digest(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise InvalidSignature("the signature does not match")


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and ascii_int(value, high=10**12) is not None:
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature("the signature header is malformed")
    return timestamp, candidates
