"""Old stored names of events, mapped to today's classes: the event store's schema kept whole.

Every event is stored under an explicit topic (`PaymentOrder.<Name>`, declared beside each
event in `domain.order` with the library's `topic=`; the aggregate itself is `PaymentOrder`),
so moving a class to another module or renaming a file changes nothing in the store. Versions
before that stored module paths (`domain.order_base:OrderBase.AuthorizationRequested`); those
topics stay registered here as aliases forever, so a store written by any version reads back
the same (tests/integration/test_old_store.py proves it on a store from before the change).

Renaming an event means adding its old stored name here; a name is never reused for a
different event.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import register_topic

_BASE = "domain.order_base:OrderBase"
_OUTCOMES = "domain.order_outcomes:OrderOutcomes"
_ORDER = "domain.order:PaymentOrder"

EVENTS: dict[str, tuple[str, ...]] = {
    "Placed": (f"{_ORDER}.Placed",),
    "AuthorizationRequested": (f"{_BASE}.AuthorizationRequested",),
    "PSPRequestResent": (f"{_BASE}.PSPRequestResent",),
    "PSPProcessing": (f"{_OUTCOMES}.PSPProcessing",),
    "Authorized": (f"{_OUTCOMES}.Authorized",),
    "Captured": (f"{_OUTCOMES}.Captured",),
    "Declined": (f"{_OUTCOMES}.Declined",),
    "Voided": (f"{_OUTCOMES}.Voided",),
    "Refunded": (f"{_OUTCOMES}.Refunded",),
    "PSPTimedOut": (f"{_OUTCOMES}.PSPTimedOut",),
    "PSPErrored": (f"{_OUTCOMES}.PSPErrored",),
    "OutcomeInquired": (f"{_OUTCOMES}.OutcomeInquired",),
    "RetryScheduled": (f"{_OUTCOMES}.RetryScheduled",),
    "CallFailed": (f"{_OUTCOMES}.CallFailed",),
    "SentToManualReview": (f"{_OUTCOMES}.SentToManualReview",),
    "CaptureRequested": (f"{_ORDER}.CaptureRequested",),
    "VoidRequested": (f"{_ORDER}.VoidRequested",),
    "RefundRequested": (f"{_ORDER}.RefundRequested",),
    "Canceled": (f"{_ORDER}.Canceled",),
    "Expired": (f"{_ORDER}.Expired",),
    "ManuallyResolved": (f"{_ORDER}.ManuallyResolved",),
    "WebhookApplied": (f"{_ORDER}.WebhookApplied",),
}
"""Every event the aggregate recorded before names were explicit, with the topics it was
stored under then (module paths of the three-layer aggregate)."""

OLD_AGGREGATE_TOPICS = (_ORDER,)
"""Older topics of the aggregate class itself (stored in each `Placed` event)."""


def register_aliases(aggregate: Any) -> None:
    """Make every old topic resolve to today's class. Called once, right after the aggregate
    is defined, so before anything is read; raises if an old name has no class any more."""
    for old in OLD_AGGREGATE_TOPICS:
        register_topic(old, aggregate)
    for name, old_topics in EVENTS.items():
        event_class = vars(aggregate).get(name)
        if event_class is None:
            raise TypeError(f"stored events named {name!r} have no class: map them")
        for old in old_topics:
            register_topic(old, event_class)
