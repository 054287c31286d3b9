"""Request and response models of the v1 API, and the mapping from the domain to them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from domain.cart import PSP_TOKEN, Checkout, LineItem, check_payment_method
from domain.currencies import EXPONENTS
from domain.errors import InvalidInput
from domain.inputs import require_storable
from domain.money import MAX_AMOUNT, is_currency
from domain.statuses import AttemptStatus, OrderStatus

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
]
Amount = Annotated[int, Field(strict=True, ge=1, le=MAX_AMOUNT)]
PaymentMethod = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100),
    Field(
        description="A PSP payment method token (pm_...); card numbers are refused",
        json_schema_extra={"pattern": PSP_TOKEN.pattern},
    ),
]
Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    Field(
        description="A circulating ISO 4217 code; amounts are in its minor units",
        json_schema_extra={"enum": sorted(EXPONENTS)},
    ),
]
IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")
]


def _return_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    return value


ReturnUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2000, pattern=r"^[\x21-\x7e]+$"),
    AfterValidator(_return_url),
]
"""Where the PSP sends the buyer back after a 3-D Secure challenge (printable ASCII)."""


class Strict(BaseModel):
    """Every request body: unknown fields are refused, and so is any text or integer that
    cannot be stored (domain.inputs), whatever the field."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return require_storable(value)


class ItemIn(Strict):
    seller_id: Identifier
    sku: Identifier
    quantity: Annotated[int, Field(strict=True, ge=1, le=10_000)]
    unit_amount: Amount


def _payment_method(value: str) -> str:
    try:
        check_payment_method(value)
    except InvalidInput as error:
        raise ValueError(error.message) from None
    return value


class CheckoutIn(Strict):
    """POST /v1/checkouts. Amounts are integer minor units of `currency`."""

    buyer_id: Identifier
    currency: Currency
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=100)]
    payment_method: PaymentMethod
    capture_method: Literal["automatic", "manual"] = "automatic"
    return_url: ReturnUrl | None = None
    """Where the buyer lands after a bank challenge; the buyer's status page if unset."""

    _check_payment_method = field_validator("payment_method")(_payment_method)

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if not is_currency(value):
            raise ValueError("not a circulating ISO 4217 currency code")
        return value

    @field_validator("items")
    @classmethod
    def _total_fits(cls, items: list[ItemIn]) -> list[ItemIn]:
        if sum(i.quantity * i.unit_amount for i in items) > MAX_AMOUNT:
            raise ValueError(f"the order total may not exceed {MAX_AMOUNT} minor units")
        return items

    def to_domain(self) -> Checkout:
        items = tuple(LineItem(i.seller_id, i.sku, i.quantity, i.unit_amount) for i in self.items)
        return Checkout(
            self.buyer_id, self.currency, items, self.payment_method, self.capture_method
        )


class AttemptIn(Strict):
    """POST /v1/payment-orders/{id}/attempts: another payment method after a decline."""

    payment_method: PaymentMethod
    return_url: ReturnUrl | None = None
    _check_payment_method = field_validator("payment_method")(_payment_method)


class CaptureIn(Strict):
    amount: Amount | None = None


class RefundIn(Strict):
    amount: Amount


class ResolveIn(Strict):
    """An operator's finding for an order in manual review, checked at the PSP."""

    outcome: Literal[
        "authorized",
        "captured",
        "not_charged",
        "not_captured",
        "voided",
        "not_voided",
        "refunded",
        "not_refunded",
    ]
    note: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    operator: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None


class ItemOut(BaseModel):
    seller_id: str
    sku: str
    quantity: int
    unit_amount: int
    amount: int


class SplitOut(BaseModel):
    """One seller's share: amount = platform_fee + payout, exactly."""

    seller_id: str
    amount: int
    platform_fee: int
    payout: int


class AttemptOut(BaseModel):
    number: int
    status: AttemptStatus
    payment_method: str
    psp_reference: str | None
    failure_code: str | None
    failure_message: str | None
    authorization_expires_at: datetime | None = None
    """While authorized: when the PSP releases the hold unless it is captured."""


class DisputeOut(BaseModel):
    """A dispute (chargeback) of the order's payment; the order's status does not change."""

    id: str
    status: Literal["needs_response", "under_review", "won", "lost"]
    amount: int
    reason: str
    evidence_due_by: datetime | None


class NextActionOut(BaseModel):
    """What the buyer must do before the payment goes on: confirm with their bank at `url`;
    the PSP then sends them to `return_url`."""

    type: Literal["redirect_to_url"]
    url: str
    return_url: str | None


class OrderOut(BaseModel):
    """A payment order as clients see it; `next_action` only while a challenge is pending."""

    id: UUID
    status: OrderStatus
    buyer_id: str
    currency: str
    amount: int
    capture_method: str
    items: list[ItemOut]
    splits: list[SplitOut]
    attempts: list[AttemptOut]
    captured_amount: int
    refunded_amount: int
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    version: int
    next_action: NextActionOut | None = None
    disputes: list[DisputeOut] | None = None
    """Only for an order that was ever disputed."""


class OrdersPage(BaseModel):
    """A page of orders; `next_cursor` is null on the last page."""

    orders: list[OrderOut]
    next_cursor: str | None


class EventOut(BaseModel):
    version: int
    type: str
    occurred_at: datetime
    data: dict[str, Any]


class EventsOut(BaseModel):
    """The audit trail of one order, oldest first."""

    events: list[EventOut]


_ENVELOPE = {"originator_id", "originator_version", "originator_topic", "timestamp"}


def event_out(event: DomainEventProtocol[UUID]) -> EventOut:
    """An event for the audit trail: its type, when, and its own fields."""
    data = {k: v for k, v in vars(event).items() if k not in _ENVELOPE}
    return EventOut(
        version=event.originator_version,
        type=type(event).__name__,
        occurred_at=getattr(event, "timestamp"),  # noqa: B009 - not in the protocol's type
        data=data,
    )
