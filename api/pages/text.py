"""Plain words for buyers and operators: order statuses, attempt statuses, failure codes.

Nothing here shows a raw internal code on its own: every code has a sentence, and codes we
have never seen (a real PSP invents new decline codes) fall back to a generic sentence.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sentence:
    """A status in plain words: the headline, one line of detail, and a tone for styling."""

    headline: str
    detail: str
    tone: str
    """One of ok, wait, bad, info: the page's colour and icon, never the only signal."""


STATUS: dict[str, Sentence] = {
    "processing": Sentence(
        "We are confirming your payment with your bank.",
        "This usually takes a few seconds.",
        "wait",
    ),
    "requires_action": Sentence(
        "Confirm with your bank.",
        "Nothing is charged until you do; you come back to this page afterwards.",
        "wait",
    ),
    "requires_payment_method": Sentence(
        "Your card was declined — try another card.",
        "You were not charged. You can pay with another card below.",
        "bad",
    ),
    "authorized": Sentence(
        "Your payment is approved.",
        "The amount is reserved on your card and is charged when the seller ships.",
        "ok",
    ),
    "succeeded": Sentence(
        "Payment received.",
        "Thank you. The sellers have been told that you paid.",
        "ok",
    ),
    "failed": Sentence(
        "This payment could not be completed; you were not charged.",
        "Please start a new checkout to try again.",
        "bad",
    ),
    "needs_review": Sentence(
        "We are double-checking this payment with our payment provider.",
        "You will not be charged twice. This page updates when we have an answer.",
        "wait",
    ),
    "expired": Sentence(
        "This checkout expired; you were not charged.",
        "Anything reserved on your card has been released. Start a new checkout to buy again.",
        "info",
    ),
    "canceled": Sentence(
        "This payment was canceled; you were not charged.",
        "Anything reserved on your card has been released.",
        "info",
    ),
    "refunded": Sentence(
        "This payment was refunded in full.",
        "The money is on its way back to your card; banks take a few days to show it.",
        "info",
    ),
    "partially_refunded": Sentence(
        "Part of this payment was refunded.",
        "The refunded part is on its way back to your card.",
        "info",
    ),
}
UNKNOWN_STATUS = Sentence("We are looking into this payment.", "Please check back later.", "info")

ATTEMPT: dict[str, tuple[str, str]] = {
    "pending": ("Sent to your bank", "wait"),
    "unknown": ("Waiting for an answer", "wait"),
    "requires_action": ("Waiting for you to confirm with your bank", "wait"),
    "authorized": ("Approved", "ok"),
    "captured": ("Paid", "ok"),
    "declined": ("Declined", "bad"),
    "failed": ("Did not go through", "bad"),
    "voided": ("Released — not charged", "info"),
}

FAILURE: dict[str, str] = {
    "card_declined": "Your bank declined the card.",
    "insufficient_funds": "The card does not have enough funds for this payment.",
    "invalid_payment_method": "This payment method cannot be used; please use another card.",
    "expired_card": "The card has expired.",
    "incorrect_cvc": "The card's security code was not correct.",
    "incorrect_number": "The card number was not correct.",
    "do_not_honor": "Your bank declined the payment without a reason; ask your bank or use "
    "another card.",
    "authentication_required": "Your bank asked for a verification step that was not completed.",
    "authentication_failed": "Your bank could not confirm that it was you; you were not charged.",
    "payment_intent_authentication_failure": "Your bank could not confirm that it was you; "
    "you were not charged.",
    "challenge_abandoned": "The payment was not confirmed with your bank before the checkout "
    "ended; you were not charged.",
    "not_cancelable": "The payment could not be canceled at our payment provider any more; "
    "we are giving the money back.",
    "processing_error": "The card network had a problem with this payment; please try again.",
    "psp_timeout": "Our payment provider did not answer in time. We are checking with them; "
    "you will not be charged twice.",
    "psp_connection_lost": "The connection to our payment provider dropped. We are checking "
    "what happened; you will not be charged twice.",
    "psp_unavailable": "Our payment provider could not be reached. We are trying again.",
    "psp_rate_limited": "Our payment provider asked us to slow down. We are trying again shortly.",
    "psp_server_error": "Our payment provider had an internal error. We are trying again.",
    "psp_outage": "Our payment provider had a problem. We are trying again.",
    "psp_rejected": "Our payment provider refused the request; our team is looking at it.",
    "psp_processing": "Your bank is still processing this payment.",
    "not_received": "Our payment provider never received the request, so we sent it again.",
    "retries_exhausted": "We could not reach our payment provider after several tries; "
    "you were not charged.",
    "session_expired": "The checkout ended before the payment went through; you were not charged.",
    "outcome_unknown": "We could not confirm the result with our payment provider; our team "
    "is checking it by hand.",
    "amount_mismatch": "Our payment provider reported a different amount than we asked for; "
    "our team is checking it by hand.",
    "manual_review": "Our team checked this attempt with the payment provider: it did not go "
    "through.",
}
DECLINED_FALLBACK = "Your bank declined this payment."
FAILURE_FALLBACK = "This attempt could not be completed."

OUTCOMES: dict[str, str] = {
    "authorized": "Authorized — the PSP holds the money",
    "captured": "Captured — the buyer was charged",
    "not_charged": "Not charged — the PSP has no such payment",
    "not_captured": "Not captured — the capture did not happen",
    "voided": "Voided — the hold was released",
    "not_voided": "Not voided — the hold is still there",
    "refunded": "Refunded — the money went back",
    "not_refunded": "Not refunded — the refund did not happen",
}


def status_sentence(status: str) -> Sentence:
    """The buyer's sentence for an order status."""
    return STATUS.get(status, UNKNOWN_STATUS)


def explain(code: str | None, *, declined: bool = False) -> str:
    """A failure code in plain words (empty for no code); unknown codes get a generic one."""
    if not code:
        return ""
    base = code.split(":", 1)[0].strip()
    if base in FAILURE:
        return FAILURE[base]
    if base.startswith("inquiry_"):
        return explain(base.removeprefix("inquiry_"))
    if base.startswith("unexpected_"):
        return "Our payment provider gave an unexpected answer; our team is looking at it."
    return DECLINED_FALLBACK if declined else FAILURE_FALLBACK


def attempt_words(status: str) -> tuple[str, str]:
    """(label, tone) of an attempt status."""
    return ATTEMPT.get(status, ("In progress", "wait"))


def outcome_label(outcome: str) -> str:
    """An operator's resolution outcome in words."""
    return OUTCOMES.get(outcome, outcome.replace("_", " "))
