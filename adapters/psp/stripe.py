"""The Stripe connector: one attempt is one PaymentIntent, through the official `stripe` SDK.

Money moves only on confirm, so an authorization is two steps: `prepare` creates the
PaymentIntent unconfirmed (metadata: our order id, attempt and PSP key), the application
records its id (PSPPaymentCreated), then `authorize` confirms it. A create whose answer was
lost moved no money: the resend (`AuthorizeRequest.retry`) first looks for a PaymentIntent
carrying our PSP key and reuses it (whatever its state), so one call never has two
PaymentIntents that could both be confirmed; a resend's confirm first reads the
PaymentIntent and answers with its state if it is already confirmed (a slow sender may have
confirmed it). A PaymentIntent left unconfirmed (its process killed, or the payment given
up) holds nothing: Stripe moves no money without a confirm.

Every POST carries our `Idempotency-Key` (Stripe keeps keys 24 h), but nothing here relies
on it: a server that ignores it (localstripe does) gets no second charge, because the
application inquires before it resends anything whose outcome is unknown, and inquiries
ask Stripe for the PaymentIntent (or the refund, by its metadata), not for the key.

A decline is a result; an outage is an exception saying whether Stripe may have processed
the request. docs/stripe.md lists where localstripe differs from Stripe and how we cope.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

from stripe import (
    APIConnectionError,
    APIError,
    CardError,
    ListObject,
    RateLimitError,
    RequestsClient,
    StripeClient,
    StripeError,
)
from stripe.params import (
    PaymentIntentCaptureParams,
    PaymentIntentConfirmParams,
    PaymentIntentCreateParams,
    RefundCreateParams,
    RefundListParams,
)

from domain.currencies import EXPONENTS
from domain.ids import parse_psp_key
from domain.inputs import ascii_int, unstorable
from domain.money import MAX_AMOUNT
from domain.psp import (
    AuthorizeRequest,
    FollowUpRequest,
    Inquiry,
    PSPConnectionLost,
    PSPPort,
    PSPRateLimited,
    PSPRejected,
    PSPResult,
    PSPServerError,
    PSPStatus,
    PSPTimeout,
    PSPUnavailable,
)

ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND"}
    | {"VUV", "XAF", "XOF", "XPF"}
)
"""Stripe's zero-decimal currencies; three-decimal ones are ISO's; every other is two."""
THREE_DECIMAL = frozenset(("BHD", "JOD", "KWD", "OMR", "TND"))
UNCONFIRMED = frozenset({"requires_payment_method", "requires_confirmation"})


def stripe_factor(currency: str) -> int:
    """How many of Stripe's amount units make one of our minor units (ISO 4217): 1 for
    nearly all; 100 for a currency ISO counts in whole units but Stripe in hundredths (ISK)."""
    stripe_exponent = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    return int(10 ** max(0, stripe_exponent - EXPONENTS.get(currency, 2)))


def to_stripe(amount: int, currency: str) -> int:
    return amount * stripe_factor(currency)


def from_stripe(amount: Any, currency: str) -> int:
    """Stripe's amount as our minor units; anything we could not store is malformed."""
    factor = stripe_factor(currency)
    if type(amount) is not int or amount % factor or not 0 <= amount // factor <= MAX_AMOUNT:
        raise PSPServerError("Stripe answered with an amount we cannot read", status_code=200)
    return amount // factor


def map_payment_intent(intent: Any) -> PSPResult | None:
    """The one place a PaymentIntent's status becomes ours; None while it is unconfirmed
    (no money has moved: for us, the call never arrived)."""
    status, currency = _text(intent, "status"), _text(intent, "currency").upper()
    error = intent.get("last_payment_error") or None
    if status in UNCONFIRMED and not error:
        return None
    if status == "requires_action" and (url := _redirect_url(intent)) is not None:
        result = _result(intent, PSPStatus.REQUIRES_ACTION, _amount(intent), currency)
        return replace(result, action_url=url)
    if status in ("requires_payment_method", "requires_action"):
        # requires_action without a page to send the buyer to (Stripe.js-only actions) is
        # one we cannot complete server-side: the buyer tries another card.
        code = _decline_code(error) if error else "authentication_required"
        message = _optional_text(error, "message") if error else "the bank asks for 3-D Secure"
        return _result(intent, PSPStatus.DECLINED, _amount(intent), currency, code, message)
    mapped = {
        "requires_capture": PSPStatus.AUTHORIZED,
        "succeeded": PSPStatus.CAPTURED,
        "processing": PSPStatus.PROCESSING,
        "canceled": PSPStatus.VOIDED,
    }.get(status)
    if mapped is None:
        raise PSPServerError(f"Stripe answered with status {status[:40]!r}", status_code=200)
    return _result(intent, mapped, _amount(intent), currency)


def _redirect_url(intent: Any) -> str | None:
    """Where the buyer confirms with their bank: `next_action.redirect_to_url.url`."""
    action = intent.get("next_action") or {}
    if not isinstance(action, dict) or action.get("type") != "redirect_to_url":
        return None
    url = checked_text((action.get("redirect_to_url") or {}).get("url"), 2000)
    if not url.startswith(("https://", "http://")):
        raise PSPServerError("Stripe answered with a redirect that is not http(s)", status_code=200)
    return url


def _amount(intent: Any) -> int:
    """What the PaymentIntent holds: received once captured (Stripe's `amount_received`;
    localstripe has none, so its charge's amount less what was not captured), else amount."""
    currency = _text(intent, "currency").upper()
    if _text(intent, "status") != "succeeded":
        return from_stripe(intent.get("amount"), currency)
    received = intent.get("amount_received")
    charge = intent.get("latest_charge")
    if received is None and isinstance(charge, dict):  # localstripe: an expanded charge
        received = charge.get("amount", 0) - (charge.get("amount_refunded") or 0)
    if received is None:
        received = intent.get("amount")
    return from_stripe(received, currency)


def _result(
    intent: Any,
    status: PSPStatus,
    amount: int,
    currency: str,
    code: str | None = None,
    message: str | None = None,
) -> PSPResult:
    return PSPResult(_text(intent, "id"), status, amount, currency, code, message)


def _decline_code(error: Any) -> str:
    code = error.get("decline_code") or error.get("code") or "card_declined"
    return checked_text(code, 100)


def _text(obj: Any, field: str) -> str:
    return checked_text(obj.get(field), 255)


def _optional_text(obj: Any, field: str) -> str | None:
    value = obj.get(field)
    return None if value is None else checked_text(value, 500)


def checked_text(value: Any, limit: int) -> str:
    """Text from Stripe we can store, at most `limit` long; else a malformed answer."""
    if not isinstance(value, str) or not value or len(value) > limit or unstorable(value):
        raise PSPServerError("Stripe answered with a field we cannot store", status_code=200)
    return value


class StripePSP(PSPPort):
    """Talks to Stripe (or localstripe) through the official SDK, retries off: retrying is
    the application's job, after an inquiry."""

    def __init__(self, secret_key: str, api_base: str, timeout_s: float) -> None:
        self.http = RequestsClient(timeout=timeout_s)
        self.client = StripeClient(
            secret_key,
            base_addresses={"api": api_base.rstrip("/")},
            max_network_retries=0,
            http_client=self.http,
        )

    def close(self) -> None:
        self.http.close()  # type: ignore[no-untyped-call]

    # ----------------------------------------------------------------- authorization

    def prepare(self, request: AuthorizeRequest) -> str:
        existing = self._find(request.idempotency_key) if request.retry else None
        if existing is not None and _text(existing, "status") != "canceled":
            return _text(existing, "id")  # an earlier try's, confirmed or not: never a second
        params: PaymentIntentCreateParams = {
            "amount": to_stripe(request.amount, request.currency),
            "currency": request.currency.lower(),
            "payment_method": request.payment_method,
            "capture_method": "automatic" if request.capture else "manual",
            "metadata": {
                "order_id": request.reference,
                "psp_key": request.idempotency_key,
            },
        }
        intent = self._call(
            lambda: self.client.v1.payment_intents.create(
                params=params, options={"idempotency_key": f"{request.idempotency_key}:create"}
            ),
            creating=True,
        )
        return _text(intent, "id")

    def authorize(self, request: AuthorizeRequest) -> PSPResult:
        if request.psp_reference is None:
            raise PSPRejected(
                "a PaymentIntent must be created before it is confirmed", status_code=400
            )
        reference = request.psp_reference
        if request.retry:  # an earlier try (or a slow sender) may have confirmed it already
            current = self._call(lambda: self.client.v1.payment_intents.retrieve(reference))
            if _text(current, "status") not in UNCONFIRMED:
                return _required(map_payment_intent(current))
        params: PaymentIntentConfirmParams = {}
        if request.return_url:  # where Stripe sends the buyer back after a bank challenge
            params["return_url"] = request.return_url
        try:
            intent = self.client.v1.payment_intents.confirm(
                reference, params=params, options={"idempotency_key": request.idempotency_key}
            )
        except CardError:  # declined: the PaymentIntent says how
            intents = self.client.v1.payment_intents
            return _required(map_payment_intent(self._call(lambda: intents.retrieve(reference))))
        except StripeError as error:
            raise _outage(error) from error
        return _required(map_payment_intent(intent.to_dict()))

    # ----------------------------------------------------------------- follow-ups

    def capture(self, request: FollowUpRequest) -> PSPResult:
        params: PaymentIntentCaptureParams = {
            "amount_to_capture": to_stripe(request.amount, request.currency)
        }
        intent = self._call(
            lambda: self.client.v1.payment_intents.capture(
                request.psp_reference,
                params=params,
                options={"idempotency_key": request.idempotency_key},
            )
        )
        return _required(map_payment_intent(intent))

    def void(self, request: FollowUpRequest) -> PSPResult:
        intent = self._call(
            lambda: self.client.v1.payment_intents.cancel(
                request.psp_reference, options={"idempotency_key": request.idempotency_key}
            )
        )
        return _required(map_payment_intent(intent))

    def refund(self, request: FollowUpRequest) -> PSPResult:
        params: RefundCreateParams = {
            "payment_intent": request.psp_reference,
            "amount": to_stripe(request.amount, request.currency),
            "metadata": {"psp_key": request.idempotency_key},
        }
        refund = self._call(
            lambda: self.client.v1.refunds.create(
                params=params, options={"idempotency_key": request.idempotency_key}
            )
        )
        return refund_result(refund, request.currency)

    # ----------------------------------------------------------------- inquiries

    def inquire(self, inquiry: Inquiry) -> PSPResult | None:
        if inquiry.kind == "refund":
            return self._inquire_refund(inquiry)
        reference = inquiry.psp_reference
        if reference is None and inquiry.kind == "authorize":
            found = self._find(inquiry.idempotency_key)
            if found is None:
                return None
            reference = _text(found, "id")
        if reference is None:
            return None
        intent = self._call(lambda: self.client.v1.payment_intents.retrieve(reference))
        return map_payment_intent(intent)

    def _inquire_refund(self, inquiry: Inquiry) -> PSPResult | None:
        if inquiry.psp_reference is None:
            return None
        params: RefundListParams = {"payment_intent": inquiry.psp_reference, "limit": 100}
        refunds = self._call(lambda: self.client.v1.refunds.list(params=params))
        for refund in self._each(refunds):
            if (refund.get("metadata") or {}).get("psp_key") == inquiry.idempotency_key:
                return refund_result(refund, inquiry.currency)
        return None

    def call_of(self, psp_reference: str) -> tuple[UUID, str, int] | None:
        """The PaymentIntent's metadata names our call (its PSP key)."""
        if not psp_reference.startswith("pi_"):
            return None
        try:
            intent = self._call(lambda: self.client.v1.payment_intents.retrieve(psp_reference))
        except PSPRejected:  # no such PaymentIntent (another account's, say): not ours
            return None
        key = (intent.get("metadata") or {}).get("psp_key")
        return parse_psp_key(key) if isinstance(key, str) else None

    def _find(self, psp_key: str) -> Any | None:
        """The PaymentIntent that carries our PSP key, if one was created (a lost answer).
        Stripe's search would find it directly; localstripe has no search, so we list."""
        intents = self._call(lambda: self.client.v1.payment_intents.list(params={"limit": 100}))
        for intent in self._each(intents):
            if (intent.get("metadata") or {}).get("psp_key") == psp_key:
                return intent
        return None

    def _call(self, request: Any, *, creating: bool = False) -> Any:
        """Make one SDK call: its answer (an object as plain data, a list as it is), or
        the outage it means for us."""
        try:
            answer = request()
        except StripeError as error:
            if creating:  # a create moves no money, whatever became of it
                message = f"creating the PaymentIntent failed: {_kind(error)}"
                raise PSPUnavailable(message) from error
            raise _outage(error) from error
        return answer if isinstance(answer, ListObject) else answer.to_dict()

    def _each(self, listing: Any) -> Any:
        """Every item of an SDK list, across pages, as plain data."""
        try:
            for item in listing.auto_paging_iter():
                yield item.to_dict()
        except StripeError as error:
            raise _outage(error) from error


def refund_result(refund: Any, currency: str) -> PSPResult:
    status = _text(refund, "status")
    mapped = {"succeeded": PSPStatus.REFUNDED, "pending": PSPStatus.PROCESSING}.get(status)
    amount = from_stripe(refund.get("amount"), currency)
    if mapped is None:
        code = _optional_text(refund, "failure_reason") or f"refund_{status}"
        return PSPResult(_text(refund, "id"), PSPStatus.DECLINED, amount, currency, code[:100])
    return PSPResult(_text(refund, "id"), mapped, amount, currency)


def _required(result: PSPResult | None) -> PSPResult:
    if result is None:
        raise PSPServerError("Stripe left the PaymentIntent unconfirmed", status_code=200)
    return result


def _kind(error: StripeError) -> str:
    return f"{type(error).__name__} (HTTP {error.http_status or '-'})"


def _outage(error: StripeError) -> Exception:
    """What an SDK error means for us: refused before processing, unknown, or rejected."""
    if isinstance(error, RateLimitError):
        seconds = ascii_int((error.headers or {}).get("Retry-After", ""), high=86_400)
        retry_after = float(seconds) if seconds is not None else None
        return PSPRateLimited("Stripe is rate limiting", retry_after_s=retry_after)
    if isinstance(error, APIConnectionError):
        return _connection_outage(error)
    status = error.http_status or 0
    if isinstance(error, APIError) or status >= 500:
        return PSPServerError(f"Stripe failed: {_kind(error)}", status_code=status or 500)
    return PSPRejected(f"Stripe refused the request: {_kind(error)}", status_code=status or 400)


def _connection_outage(error: APIConnectionError) -> Exception:
    cause = repr(error.__cause__)
    if "ConnectTimeout" in cause or "NewConnectionError" in cause or "refused" in cause:
        return PSPUnavailable("could not reach Stripe")
    if "ReadTimeout" in cause or "timed out" in cause:
        return PSPTimeout("Stripe did not answer in time")
    return PSPConnectionLost("the connection to Stripe dropped")
