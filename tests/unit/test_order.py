from __future__ import annotations

from datetime import timedelta

import pytest

from domain.calls import Action, CallKind, Purpose
from domain.errors import IdempotencyKeyReused, IllegalTransition, InvalidInput
from domain.psp import PSPRateLimited, PSPServerError, PSPStatus, PSPTimeout, PSPUnavailable
from domain.statuses import AttemptStatus, OperationStatus, OrderStatus
from tests.unit.orders import NOW, TTL, answer, placed, replayed, state

AUTH = CallKind.AUTHORIZE


def event_types(order: object) -> list[str]:
    return [type(e).__name__ for e in order.pending_events]  # type: ignore[attr-defined]


def test_placing_records_the_split_and_the_write_ahead_attempt() -> None:
    order = placed()
    assert event_types(order) == ["Placed", "AuthorizationRequested"]
    assert order.status == OrderStatus.PROCESSING
    assert order.amount == 2550
    assert [(s.seller_id, s.gross, s.platform_fee, s.payout) for s in order.splits] == [
        ("s1", 2000, 200, 1800),
        ("s2", 550, 55, 495),
    ]
    attempt = order.attempts[0]
    assert attempt.status == AttemptStatus.PENDING
    assert attempt.psp_key == f"{order.id}:authorize:1"
    assert order.expires_at == NOW + TTL
    assert order.awaiting_psp


def test_the_order_id_derives_from_client_and_key() -> None:
    assert placed().id == placed().id


def test_automatic_capture_succeeds_and_records_the_allocation() -> None:
    order = placed()
    order.record_result(AUTH, 1, answer(PSPStatus.CAPTURED))
    assert order.status == OrderStatus.SUCCEEDED
    assert order.attempts[0].status == AttemptStatus.CAPTURED
    assert order.captured_amount == 2550
    assert not order.awaiting_psp
    assert state(replayed(order)) == state(order)


def test_a_result_for_a_settled_call_changes_nothing() -> None:
    order = placed()
    order.record_result(AUTH, 1, answer(PSPStatus.CAPTURED))
    before = order.version
    order.record_result(AUTH, 1, answer(PSPStatus.DECLINED))
    order.record_result(AUTH, 1, answer(PSPStatus.CAPTURED))
    assert order.version == before


def test_decline_then_a_new_attempt_with_another_card() -> None:
    order = placed(payment_method="pm_card_declined")
    order.record_result(AUTH, 1, answer(PSPStatus.DECLINED, decline_code="card_declined"))
    assert order.status == OrderStatus.REQUIRES_PAYMENT_METHOD
    assert order.attempts[0].failure_code == "card_declined"
    attempt = order.request_authorization("pm_card_visa", NOW + timedelta(minutes=1))
    assert attempt.number == 2 and attempt.psp_key.endswith(":authorize:2")
    assert order.status == OrderStatus.PROCESSING
    order.record_result(AUTH, 2, answer(PSPStatus.CAPTURED))
    assert order.status == OrderStatus.SUCCEEDED


def test_no_new_attempt_while_one_is_in_flight_or_after_the_session() -> None:
    order = placed()
    with pytest.raises(IllegalTransition):
        order.request_authorization("pm_card_visa", NOW)
    order.record_result(AUTH, 1, answer(PSPStatus.DECLINED, decline_code="card_declined"))
    with pytest.raises(IllegalTransition, match="expired"):
        order.request_authorization("pm_card_visa", NOW + TTL)


def test_a_refused_command_records_nothing() -> None:
    order = placed()
    before = (order.version, len(order.pending_events))
    with pytest.raises(IllegalTransition):
        order.request_capture(None, NOW)
    with pytest.raises(InvalidInput):
        order.request_authorization("4242424242424242", NOW)
    assert (order.version, len(order.pending_events)) == before


def test_timeout_makes_the_outcome_unknown_and_the_inquiry_settles_it() -> None:
    order = placed()
    order.record_outage(AUTH, 1, PSPTimeout("slow"), elapsed_ms=1000)
    assert order.attempts[0].status == AttemptStatus.UNKNOWN
    assert order.status == OrderStatus.PROCESSING
    with pytest.raises(IllegalTransition, match="inquired"):
        order.schedule_retry(AUTH, 1, Action.RESEND, NOW, "psp_timeout")
    order.record_inquiry(AUTH, 1, answer(PSPStatus.CAPTURED))
    assert event_types(order)[-2:] == ["OutcomeInquired", "Captured"]
    assert order.status == OrderStatus.SUCCEEDED


def test_an_inquiry_that_finds_nothing_allows_a_resend_with_the_same_key() -> None:
    order = placed()
    order.record_outage(AUTH, 1, PSPTimeout("slow"), elapsed_ms=1000)
    order.record_inquiry(AUTH, 1, None)
    attempt = order.attempts[0]
    assert attempt.status == AttemptStatus.PENDING and not attempt.outcome_unknown
    order.resend(AUTH, 1, NOW)
    assert attempt.tries == 2
    assert event_types(order)[-1] == "PSPRequestResent"


@pytest.mark.parametrize(
    ("outage", "unknown"),
    [
        (PSPUnavailable("refused"), False),
        (PSPRateLimited("slow down", retry_after_s=2), False),
        (PSPServerError("500", status_code=500), True),
        (PSPServerError("503", status_code=503, processed=False), False),
    ],
)
def test_errors_are_unknown_unless_known_not_processed(outage: Exception, unknown: bool) -> None:
    order = placed()
    order.record_outage(AUTH, 1, outage, elapsed_ms=5)  # type: ignore[arg-type]
    assert order.attempts[0].outcome_unknown is unknown
    assert order.attempts[0].failure_code == outage.code  # type: ignore[attr-defined]


def test_unknown_goes_to_review_and_an_operator_resolves_it() -> None:
    order = placed()
    order.record_outage(AUTH, 1, PSPTimeout("slow"), elapsed_ms=1000)
    order.send_to_review(AUTH, 1, "outcome_unknown: no answer")
    assert order.status == OrderStatus.NEEDS_REVIEW
    with pytest.raises(InvalidInput, match="note"):
        order.resolve("captured", "  ", "ops@example")
    with pytest.raises(InvalidInput, match="one of"):
        order.resolve("refunded", "checked", "ops@example")
    order.resolve("captured", "PSP dashboard shows the charge", "ops@example")
    assert event_types(order)[-2:] == ["ManuallyResolved", "Captured"]
    assert order.status == OrderStatus.SUCCEEDED
    assert order.review is None
    assert state(replayed(order)) == state(order)


def test_a_resolution_of_not_charged_fails_the_order() -> None:
    order = placed()
    order.record_outage(AUTH, 1, PSPTimeout("slow"), elapsed_ms=1000)
    order.send_to_review(AUTH, 1, "outcome_unknown")
    order.resolve("not_charged", "no such payment at the PSP", "ops")
    assert order.status == OrderStatus.FAILED
    assert order.attempts[0].failure_code == "manual_review"


def test_an_amount_mismatch_is_never_accepted_silently() -> None:
    order = placed()
    order.record_result(AUTH, 1, answer(PSPStatus.CAPTURED, amount=2551))
    assert order.status == OrderStatus.NEEDS_REVIEW
    assert order.review is not None and order.review["reason"].startswith("amount_mismatch")
    assert order.captured_amount == 0


def test_manual_capture_in_part_then_refund_in_proportion() -> None:
    order = placed(capture_method="manual")
    order.record_result(AUTH, 1, answer(PSPStatus.AUTHORIZED))
    assert order.status == OrderStatus.AUTHORIZED
    with pytest.raises(InvalidInput):
        order.request_capture(3000, NOW)
    capture = order.request_capture(2000, NOW)
    assert capture.psp_key == f"{order.id}:capture:1"
    order.record_result(CallKind.CAPTURE, 1, answer(PSPStatus.CAPTURED, amount=2000))
    assert order.status == OrderStatus.SUCCEEDED
    assert order.captured_amount == 2000
    order.request_refund(500, NOW)
    order.record_result(CallKind.REFUND, 2, answer(PSPStatus.REFUNDED, amount=500))
    assert order.status == OrderStatus.PARTIALLY_REFUNDED
    order.request_refund(1500, NOW)
    order.record_result(CallKind.REFUND, 3, answer(PSPStatus.REFUNDED, amount=1500))
    assert order.status == OrderStatus.REFUNDED
    assert order.refunded == order.captured
    with pytest.raises(IllegalTransition):
        order.request_refund(1, NOW)


def test_cancel_voids_an_authorization() -> None:
    order = placed(capture_method="manual")
    order.record_result(AUTH, 1, answer(PSPStatus.AUTHORIZED))
    void = order.request_cancel(NOW)
    assert void is not None and void.kind == CallKind.VOID
    order.record_result(CallKind.VOID, 1, answer(PSPStatus.VOIDED))
    assert order.status == OrderStatus.CANCELED
    assert order.attempts[0].status == AttemptStatus.VOIDED


def test_cancel_before_authorization_closes_the_order() -> None:
    order = placed(payment_method="pm_card_declined")
    order.record_result(AUTH, 1, answer(PSPStatus.DECLINED, decline_code="card_declined"))
    assert order.request_cancel(NOW) is None
    assert order.status == OrderStatus.CANCELED


def test_expiry_waits_for_calls_in_flight_and_the_deadline() -> None:
    order = placed()
    with pytest.raises(IllegalTransition, match="not ended"):
        order.expire(NOW)
    with pytest.raises(IllegalTransition, match="in flight"):
        order.expire(NOW + TTL)
    order.record_result(AUTH, 1, answer(PSPStatus.DECLINED, decline_code="card_declined"))
    order.expire(NOW + TTL)
    assert order.status == OrderStatus.EXPIRED


def test_a_late_authorization_on_a_closed_order_is_voided_not_captured() -> None:
    order = placed(capture_method="manual")
    order.record_outage(AUTH, 1, PSPUnavailable("refused"), elapsed_ms=1)
    order.fail_call(AUTH, 1, "retries_exhausted", "gave up", ends_order=True)
    assert order.status == OrderStatus.FAILED
    applied = order.apply_webhook(
        "evt_1", "payment.authorized", AUTH, 1, answer(PSPStatus.AUTHORIZED)
    )
    assert applied
    assert order.status == OrderStatus.FAILED
    assert order.attempts[0].status == AttemptStatus.AUTHORIZED
    void = order.request_void(1, NOW)
    assert void.purpose == Purpose.COMPENSATION
    order.record_result(CallKind.VOID, void.number, answer(PSPStatus.VOIDED))
    assert order.attempts[0].status == AttemptStatus.VOIDED
    assert order.status == OrderStatus.FAILED


def test_webhooks_apply_once_and_never_move_backwards() -> None:
    order = placed(payment_method="pm_card_processing")
    order.record_result(AUTH, 1, answer(PSPStatus.PROCESSING))
    assert order.attempts[0].psp_processing
    assert order.apply_webhook("evt_1", "payment.captured", AUTH, 1, answer(PSPStatus.CAPTURED))
    version = order.version
    assert not order.apply_webhook("evt_1", "payment.captured", AUTH, 1, answer(PSPStatus.CAPTURED))
    assert not order.apply_webhook("evt_2", "payment.declined", AUTH, 1, answer(PSPStatus.DECLINED))
    assert order.version == version
    assert order.status == OrderStatus.SUCCEEDED


def test_request_keys_replay_and_detect_reuse() -> None:
    order = placed(payment_method="pm_card_declined")
    order.record_result(AUTH, 1, answer(PSPStatus.DECLINED, decline_code="card_declined"))
    order.request_authorization("pm_card_visa", NOW, ("key-2", "attempt:pm_card_visa"))
    assert order.replays("key-2", "attempt:pm_card_visa")
    assert not order.replays("key-3", "attempt:pm_card_visa")
    with pytest.raises(IdempotencyKeyReused):
        order.replays("key-2", "attempt:pm_card_mastercard")


def test_retries_are_scheduled_durably_on_the_call() -> None:
    order = placed()
    order.record_outage(AUTH, 1, PSPUnavailable("refused"), elapsed_ms=1)
    due = NOW + timedelta(seconds=3)
    order.schedule_retry(AUTH, 1, Action.RESEND, due, "psp_unavailable")
    attempt = replayed(order).attempts[0]
    assert (attempt.next_action, attempt.due_at, attempt.retries) == (Action.RESEND, due, 1)


def test_capture_failure_leaves_the_authorization_to_retry() -> None:
    order = placed(capture_method="manual")
    order.record_result(AUTH, 1, answer(PSPStatus.AUTHORIZED))
    order.request_capture(None, NOW)
    order.record_outage(CallKind.CAPTURE, 1, PSPUnavailable("refused"), elapsed_ms=1)
    order.fail_call(CallKind.CAPTURE, 1, "retries_exhausted", "gave up", ends_order=False)
    assert order.operations[0].status == OperationStatus.FAILED
    assert order.status == OrderStatus.AUTHORIZED
    order.request_capture(None, NOW)
    order.record_result(CallKind.CAPTURE, 2, answer(PSPStatus.CAPTURED))
    assert order.status == OrderStatus.SUCCEEDED


def test_a_closed_order_is_flagged_for_review_without_leaving_its_final_status() -> None:
    order = placed(capture_method="manual")
    order.record_outage(AUTH, 1, PSPUnavailable("refused"), elapsed_ms=1)
    order.fail_call(AUTH, 1, "retries_exhausted", "gave up", ends_order=True)
    order.apply_webhook("evt_1", "payment.authorized", AUTH, 1, answer(PSPStatus.AUTHORIZED))
    void = order.request_void(1, NOW)
    order.send_to_review(CallKind.VOID, void.number, "psp_rejected: HTTP 409: invalid_state")
    assert order.status == OrderStatus.FAILED
    assert order.review is not None and order.review["kind"] == "void"
    order.resolve("voided", "voided by hand in the PSP dashboard", "ops")
    assert order.status == OrderStatus.FAILED and order.review is None
    assert order.attempts[0].status == AttemptStatus.VOIDED
    assert state(replayed(order)) == state(order)


def test_resolving_an_amount_mismatch_records_what_the_psp_holds() -> None:
    order = placed()
    order.record_result(AUTH, 1, answer(PSPStatus.CAPTURED, amount=2600))
    order.resolve("captured", "the PSP captured 2600; the buyer agreed", "ops")
    assert order.status == OrderStatus.SUCCEEDED
    assert order.captured_amount == 2600
