"""Domain errors: raised by guards before any state changes."""

from __future__ import annotations


class DomainError(Exception):
    """A command that the domain refuses; nothing was recorded."""

    code = "domain_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    """A value that can never be valid (unknown currency, negative amount, card number)."""

    code = "invalid_input"


class IllegalTransition(DomainError):
    """The command does not apply to the order in its current state (HTTP 409)."""

    code = "illegal_transition"


class AuthorizationExpired(IllegalTransition):
    """The PSP's hold on the buyer's money lapsed: nothing is left to capture (HTTP 409)."""

    code = "authorization_expired"


class IdempotencyKeyReused(DomainError):
    """The same Idempotency-Key came back with a different request body (HTTP 422)."""

    code = "idempotency_key_reused"


class OrderNotFound(DomainError):
    """No payment order with that id (or not visible to this client)."""

    code = "not_found"


class ConcurrentChange(DomainError):
    """Another process changed the order first and retrying did not settle it (HTTP 409)."""

    code = "concurrent_change"
