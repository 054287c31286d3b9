"""Bearer API keys with roles (`checkout`, `ops`), and development mode when none are set."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from api.problems import Problem
from bootstrap.settings import Role

DEV_CLIENT = "development"


@dataclass(frozen=True)
class Caller:
    """Who is calling: `client_id` scopes idempotency keys and which orders they see."""

    client_id: str
    roles: frozenset[Role]

    @property
    def is_ops(self) -> bool:
        return Role.OPS in self.roles

    def may_see(self, order_client_id: str) -> bool:
        return self.is_ops or order_client_id == self.client_id

    @property
    def scope(self) -> str | None:
        """The client whose orders this caller may see and act on; None (all) for ops."""
        return None if self.is_ops else self.client_id


def client_id_for(key: str) -> str:
    """A stable, non-secret name for an API key (its hash), used as the client identity."""
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:20]


def authenticate(request: Request, authorization: str | None) -> Caller:
    """The caller for a request's `Authorization: Bearer <key>` header."""
    caller = caller_for(request.app.state.container.settings.keys, authorization)
    if caller is None:
        raise Problem(
            401,
            "unauthorized",
            "send a valid API key as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return caller


def caller_for(keys: dict[str, Role], authorization: str | None) -> Caller | None:
    """The caller an `Authorization` header names, None if it names none (with no keys
    configured, everyone is the development client with every role)."""
    if not keys:
        return Caller(DEV_CLIENT, frozenset(Role))
    scheme, _, token = (authorization or "").partition(" ")
    role = _lookup(keys, token.strip()) if scheme.lower() == "bearer" else None
    return Caller(client_id_for(token.strip()), frozenset({role})) if role else None


def _lookup(keys: dict[str, Role], token: str) -> Role | None:
    """Constant-time comparison against every configured key."""
    found = None
    for key, role in keys.items():
        if hmac.compare_digest(key.encode(), token.encode()):
            found = role
    return found


def require(*roles: Role) -> object:
    """A dependency that admits callers holding any of `roles`."""

    async def dependency(  # async: no thread-pool hop (it never blocks)
        request: Request,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Caller:
        caller = authenticate(request, authorization)
        if not caller.roles & set(roles):
            raise Problem(403, "forbidden", f"this needs the {' or '.join(roles)} role")
        return caller

    return Depends(dependency)


CheckoutCaller = Annotated[Caller, require(Role.CHECKOUT)]
READERS = (Role.CHECKOUT, Role.OPS)
"""The roles that may read orders (in the order a 403 names them)."""
AnyCaller = Annotated[Caller, require(*READERS)]
OpsCaller = Annotated[Caller, require(Role.OPS)]
