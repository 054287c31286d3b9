"""The PSP port: one method per operation, our ids in, a frozen result out.

A decline is a result; an outage (timeout, 5xx, dropped connection, 429) is an exception
that says whether the PSP processed the request, when that is known.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from domain.disputes import DisputeNotice


class PSPStatus(StrEnum):
    """What the PSP says became of a payment."""

    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    DECLINED = "declined"
    PROCESSING = "processing"
    VOIDED = "voided"
    REFUNDED = "refunded"
    REQUIRES_ACTION = "requires_action"
    """The buyer must confirm with their bank (3-D Secure) at `PSPResult.action_url`."""


@dataclass(frozen=True)
class AuthorizeRequest:
    idempotency_key: str
    reference: str
    amount: int
    currency: str
    payment_method: str
    capture: bool
    psp_reference: str | None = None
    """The payment `PSPPort.prepare` created for this call, for two-step PSPs."""
    retry: bool = False
    """True when this call was sent before (a resend): a two-step PSP first looks for the
    payment an earlier try may have created."""
    return_url: str | None = None
    """Where the PSP sends the buyer back after a 3-D Secure challenge."""


@dataclass(frozen=True)
class Inquiry:
    """What became of one of our calls? `psp_reference` is the PSP's payment (the attempt's),
    when we know it."""

    idempotency_key: str
    kind: str
    psp_reference: str | None
    amount: int
    currency: str


@dataclass(frozen=True)
class FollowUpRequest:
    """A capture, void or refund of a payment the PSP already knows by `psp_reference`."""

    idempotency_key: str
    psp_reference: str
    amount: int
    currency: str


@dataclass(frozen=True)
class PSPResult:
    """The PSP's answer. For a refund, `amount` is the refunded amount."""

    psp_reference: str
    status: PSPStatus
    amount: int
    currency: str
    decline_code: str | None = None
    decline_message: str | None = None
    action_url: str | None = None
    """With status `requires_action`: the page where the buyer confirms with their bank."""
    authorization_expires_at: datetime | None = None
    """With status `authorized`: when the PSP releases the hold unless it is captured."""


class PSPOutage(Exception):
    """The PSP did not give an answer. `processed` is False only when it surely did nothing."""

    processed: bool | None = None
    code = "psp_outage"

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class PSPTimeout(PSPOutage):
    """No answer within the timeout: the request may or may not have been processed."""

    code = "psp_timeout"


class PSPConnectionLost(PSPOutage):
    """The connection dropped after the request was sent: outcome unknown."""

    code = "psp_connection_lost"


class PSPUnavailable(PSPOutage):
    """The PSP refused before doing anything (connection refused, 503 'not processed')."""

    processed = False
    code = "psp_unavailable"


class PSPRateLimited(PSPUnavailable):
    """429: not processed; try again after `retry_after_s`."""

    code = "psp_rate_limited"


class PSPServerError(PSPOutage):
    """A 5xx that may have come after processing: outcome unknown."""

    code = "psp_server_error"

    def __init__(self, message: str, *, status_code: int, processed: bool | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.processed = processed


class PSPRejected(Exception):
    """A 4xx other than 429 for a request we built: a bug or a mismatch, never retried blindly."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class PSPPort(ABC):
    """What the application needs from a Payment Service Provider."""

    def prepare(self, request: AuthorizeRequest) -> str | None:
        """For a PSP whose charge takes two steps (Stripe: create an unconfirmed
        PaymentIntent, then confirm it), create the payment without moving money and return
        its reference, which the application records before `authorize` confirms it. None
        (the default) for a PSP whose `authorize` does it all. An outage here moved no
        money: it raises PSPUnavailable."""
        return None

    @abstractmethod
    def authorize(self, request: AuthorizeRequest) -> PSPResult:
        """Authorize (and capture, if `request.capture`) a payment, idempotent by key."""

    asynchronous = False
    """True when `authorize_async` waits for the PSP without a thread (and `prepare` is not
    needed): checkouts then run on the server's event loop, at any PSP latency."""

    async def authorize_async(self, request: AuthorizeRequest) -> PSPResult:
        """`authorize` for an event loop; only called when `asynchronous` is True."""
        raise NotImplementedError("this PSP connector has no async client")

    @abstractmethod
    def capture(self, request: FollowUpRequest) -> PSPResult:
        """Capture `amount` of an authorized payment."""

    @abstractmethod
    def void(self, request: FollowUpRequest) -> PSPResult:
        """Release an authorization that will not be captured."""

    @abstractmethod
    def refund(self, request: FollowUpRequest) -> PSPResult:
        """Refund `amount` of a captured payment."""

    @abstractmethod
    def inquire(self, inquiry: Inquiry) -> PSPResult | None:
        """What became of the call; None if it never arrived (or moved no money yet)."""

    def call_of(self, psp_reference: str) -> tuple[UUID, str, int] | None:
        """Which call of ours (order id, kind, number) created the PSP's payment, for a PSP
        whose notifications do not say (None: not ours, or not known)."""
        return None


@dataclass(frozen=True)
class Notification:
    """A PSP's verified notification about one of our calls: which call, and its result.

    `call` is (order id, call kind, call number), None when the notification is about
    something that is not ours (the PSP's other customers' traffic, a test event)."""

    event_id: str
    event_type: str
    call: tuple[UUID, str, int] | None
    result: PSPResult | None
    dispute: DisputeNotice | None = None
    """For a notification about a dispute of the call's payment (then `result` is None)."""
    payment: str | None = None
    """The PSP's payment a dispute concerns, when the notification cannot say which call of
    ours made it (Stripe's disputes): `PSPPort.call_of` finds out."""


class UnverifiedNotification(Exception):
    """The notification's signature is missing, malformed, wrong or too old."""


class MalformedNotification(Exception):
    """The notification is signed but is not one we can read."""


class NotificationParser(ABC):
    """Each PSP connector verifies and reads its own notifications (webhooks)."""

    @abstractmethod
    def parse(self, body: bytes, headers: Mapping[str, str], now: float) -> Notification:
        """Verify the signature over the raw `body`, then parse it. Raises
        UnverifiedNotification before anything is parsed, MalformedNotification after."""
