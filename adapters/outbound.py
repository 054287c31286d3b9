"""Outbound webhooks to the marketplace: Standard Webhooks signatures, URL rules, the sender.

Signatures follow the Standard Webhooks spec (https://www.standardwebhooks.com), so receivers
verify them with the `standardwebhooks` package in any language:

    webhook-id:        the event's id (stable: the receiver's dedupe key)
    webhook-timestamp: unix seconds of this try
    webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>

where `key` is the base64-decoded part of the endpoint's `whsec_...` secret.

URLs are http(s) only; in production mode (API keys set) loopback, private, link-local and
reserved addresses are refused unless PAYMENTS_OUTBOUND_ALLOW_PRIVATE is set, both when an
endpoint is created and when each delivery resolves the host (DNS may change).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from domain.errors import InvalidInput
from domain.inputs import unstorable

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
MAX_URL = 2048


def new_secret() -> str:
    """A fresh endpoint secret (shown once to its owner)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers for one delivery try."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    message = f"{event_id}.{timestamp}.".encode() + body
    digest = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{digest}",
        "content-type": "application/json",
    }


def check_url(url: str, *, allow_private: bool) -> str:
    """`url` if webhooks may be sent there, else InvalidInput naming the field `url`."""
    parts = urlsplit(url)
    if len(url) > MAX_URL or unstorable(url) or not url.isascii():
        raise InvalidInput("must be an ASCII URL of at most 2048 characters", field="url")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("must be an http:// or https:// URL with a host", field="url")
    if parts.username or parts.password:
        raise InvalidInput("must not carry credentials", field="url")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise InvalidInput("has an invalid port", field="url") from None
    if not allow_private and _private_host(parts.hostname):
        raise InvalidInput(
            "must not point at a loopback or private address (PAYMENTS_OUTBOUND_ALLOW_PRIVATE)",
            field="url",
        )
    return url


def _private_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: checked again at each delivery, once resolved
    return _private_address(address)


def _private_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def resolves_private(url: str) -> bool:
    """True when the URL's host resolves to any address we may not send to."""
    host = urlsplit(url).hostname or ""
    if _private_host(host):
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False  # the delivery itself will fail and be retried
    return any(_private_address(ipaddress.ip_address(info[4][0])) for info in infos)


@dataclass(frozen=True)
class Attempt:
    """One try: the HTTP status, or the error that stopped it; how long it took."""

    status_code: int | None
    error: str | None
    latency_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Sender:
    """Posts signed events; any failure is an Attempt, never an exception."""

    def __init__(self, timeout_s: float, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def send(self, url: str, secret: str, event_id: str, body: bytes) -> Attempt:
        started = time.monotonic()
        if not self.allow_private and resolves_private(url):
            return Attempt(None, "the host resolves to a private address", 0)
        headers = sign(secret, event_id, int(time.time()), body)
        try:
            response = self.client.post(url, content=body, headers=headers)
        except Exception as error:  # any failure to deliver is a failed try, never a crash
            return Attempt(None, type(error).__name__, _ms(started))
        return Attempt(response.status_code, None, _ms(started))

    def close(self) -> None:
        self.client.close()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
