"""Identifiers derived from what the client sent, so retries land on the same stream."""

from __future__ import annotations

from uuid import UUID, uuid5

from domain.inputs import ascii_int

KINDS = ("authorize", "capture", "void", "refund")

ORDER_NAMESPACE = UUID("6f1c2a0e-4b5d-5e8f-9a7b-3c2d1e0f9a8b")


def order_id_for(client_id: str, idempotency_key: str) -> UUID:
    """The payment order id for a client's Idempotency-Key (scoped to that client)."""
    return uuid5(ORDER_NAMESPACE, f"{client_id}\n{idempotency_key}")


def psp_key(order_id: UUID, kind: str, number: int) -> str:
    """The PSP idempotency key of call `number` of `kind`: stable across resends of that call."""
    return f"{order_id}:{kind}:{number}"


def parse_psp_key(key: str) -> tuple[UUID, str, int] | None:
    """(order id, kind, number) of a key we made with psp_key(), or None for any other."""
    parts = key.split(":")
    number = ascii_int(parts[2], low=1, high=999_999) if len(parts) == 3 else None
    if number is None or parts[1] not in KINDS:
        return None
    try:
        return UUID(parts[0]), parts[1], number
    except ValueError:
        return None
