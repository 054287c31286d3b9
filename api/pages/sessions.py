"""Operators' dashboard sessions: a signed cookie, and CSRF tokens derived from it.

Signing in posts an `ops` API key in a form body once; the cookie never holds the key:

    cookie  = "<client id>|<expiry, unix s>|<hex HMAC-SHA256(session key, '<client id>|<expiry>')>"
    session key = HMAC-SHA256(that operator's API key, "payments/dashboard-session/v1")
    CSRF token  = hex HMAC-SHA256(session key, "csrf|" + cookie)

The client id is the key's public name (`api.auth.client_id_for`), so checking a cookie finds
the ops key it names and recomputes the MAC. Keying each session with the operator's own key
means only someone holding that key can forge one (and they could sign in anyway); sessions
survive restarts and work across replicas; removing or rotating a key from PAYMENTS_API_KEYS
ends its sessions at once; and no other secret (the PSP's webhook secret) can mint one.
The cookie is HttpOnly, SameSite=Strict and scoped to Path=/dashboard (plus Secure over
HTTPS); the CSRF token in every form is bound to the session, so a cross-site form cannot
carry one, and a stolen token dies with its session.

In development mode (no API keys) there is no sign-in; forms still carry a CSRF token,
keyed with the process's random secret, since a hostile page could otherwise post to a
dashboard on localhost.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from api.auth import DEV_CLIENT, client_id_for
from api.pages.tokens import PROCESS_SECRET
from bootstrap.settings import Role, Settings
from domain.inputs import ascii_int

COOKIE = "payments_session"
TTL_S = 8 * 3600
"""One operator shift."""
SESSION_LABEL = b"payments/dashboard-session/v1"


@dataclass(frozen=True)
class Operator:
    """The signed-in operator: the identity recorded on their actions, and their CSRF token."""

    client_id: str
    csrf: str
    development: bool = False
    session: tuple[str, int] | None = None
    """The session cookie's MAC and expiry (to revoke it at sign-out); None in development."""


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _session_key(api_key: str) -> bytes:
    return hmac.new(api_key.encode(), SESSION_LABEL, hashlib.sha256).digest()


def ops_keys(settings: Settings) -> list[str]:
    """The configured keys that hold the ops role."""
    return [key for key, role in settings.keys.items() if role == Role.OPS]


def sign_in(settings: Settings, submitted: str, now: float) -> str | None:
    """A new session cookie for a correct ops key, else None (constant time per key)."""
    found = None
    for key in ops_keys(settings):
        if hmac.compare_digest(key.encode(), submitted.encode()):
            found = key
    if found is None:
        return None
    body = f"{client_id_for(found)}|{int(now) + TTL_S}"
    return f"{body}|{_mac(_session_key(found), body)}"


def operator_for(settings: Settings, cookie: str | None, now: float) -> Operator | None:
    """The operator a session cookie belongs to, if it is genuine, current and its key is
    still configured."""
    client_id, _, rest = (cookie or "").partition("|")
    expiry, _, mac = rest.partition("|")
    expires = ascii_int(expiry)
    if expires is None or expires <= now:
        return None
    key = next((k for k in ops_keys(settings) if client_id_for(k) == client_id), None)
    if key is None:
        return None
    session_key = _session_key(key)
    if not hmac.compare_digest(mac, _mac(session_key, f"{client_id}|{expiry}")):
        return None
    return Operator(client_id, _mac(session_key, f"csrf|{cookie}"), session=(mac, expires))


def development_operator() -> Operator:
    """Everyone is the operator when authentication is off."""
    return Operator(DEV_CLIENT, _mac(PROCESS_SECRET, f"csrf|{DEV_CLIENT}"), development=True)


def csrf_matches(operator: Operator, submitted: str | None) -> bool:
    """Does a form's CSRF token belong to this session?"""
    return hmac.compare_digest(operator.csrf.encode(), (submitted or "").encode())
