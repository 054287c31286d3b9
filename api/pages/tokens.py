"""Capability links for buyers: `/status/<order id>?token=<hex HMAC-SHA256(link key, id)>`.

A buyer is not an API client, so the link itself is the credential, and it opens one order
only. The link key is derived from a server secret rather than being that secret:

    link key = HMAC-SHA256(PAYMENTS_WEBHOOK_SECRET, "payments/status-link/v1")

Deriving (domain separation) means a status token can never double as a webhook signature
or any other MAC made with the same secret; changing the label revokes every link at once.
The webhook secret is required whenever API keys are set and all replicas share it, so a
link keeps working across restarts and behind a load balancer. Without it (development
mode), a random 256-bit secret drawn once per process is used instead: links then stop
working when the process restarts, which is harmless in development. The PSP knows the
webhook secret too, so it could mint links; it already knows each payment, and a dedicated
secret setting would remove even that.

Tokens are compared in constant time, and a wrong token is indistinguishable from an
unknown order (both are "not found"). Access logs never see them (`RedactTokens`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from uuid import UUID

from bootstrap.settings import Settings

PROCESS_SECRET = secrets.token_bytes(32)
"""Drawn once per process; the key of last resort when no webhook secret is configured."""
LINK_LABEL = b"payments/status-link/v1"
TOKEN = re.compile(r"^[0-9a-f]{64}$")
_IN_QUERY = re.compile(r"((?:^|[?&])token=)[^&\s\"]*")


def server_secret(settings: Settings) -> bytes:
    """The configured webhook secret, or this process's random secret."""
    configured = settings.webhook_secret.get_secret_value()
    return configured.encode() if configured else PROCESS_SECRET


def derive(settings: Settings, label: bytes) -> bytes:
    """A key for one purpose, derived from the server secret."""
    return hmac.new(server_secret(settings), label, hashlib.sha256).digest()


def status_token(order_id: UUID, settings: Settings) -> str:
    """The hex capability token of one order's status page."""
    key = derive(settings, LINK_LABEL)
    return hmac.new(key, str(order_id).encode(), hashlib.sha256).hexdigest()


def status_link(order_id: UUID, settings: Settings) -> str:
    """The buyer's link to an order's status page (a path: the host is the caller's)."""
    return f"/status/{order_id}?token={status_token(order_id, settings)}"


def return_url(order_id: UUID, settings: Settings, chosen: str | None = None) -> str:
    """Where the PSP sends the buyer after a bank challenge: the client's choice, or the
    buyer's status page under PAYMENTS_PUBLIC_URL."""
    return chosen or settings.public_url + status_link(order_id, settings)


def token_matches(order_id: UUID, token: str | None, settings: Settings) -> bool:
    """Constant-time check of a status token."""
    if token is None or not TOKEN.fullmatch(token):
        return False
    return hmac.compare_digest(token, status_token(order_id, settings))


def redact(text: str) -> str:
    """`...?token=abc` -> `...?token=[redacted]`."""
    return _IN_QUERY.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """Keeps capability tokens out of access logs (uvicorn logs the full request path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_logs() -> None:
    """Install `RedactTokens` on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())
