"""Disputes on the order: recorded once, in any order of arrival, never moving the status;
booked in the ledger with every posting set summing to zero, liability as recorded."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from domain.calls import CallKind
from domain.disputes import DisputeNotice, DisputeStatus, Liability
from domain.errors import IllegalTransition, InvalidInput
from domain.ledger import (
    DISPUTE_LOSSES,
    DISPUTED_FUNDS,
    PSP_FEES,
    PSP_RECEIVABLE,
    postings_for,
    seller_payable,
)
from domain.order import PaymentOrder
from domain.psp import PSPStatus
from domain.statuses import OrderStatus
from projections.documents import order_document
from tests.unit.orders import NOW, answer, placed, replayed

DUE = NOW + timedelta(days=7)


def paid() -> PaymentOrder:
    order = placed()
    order.record_result(CallKind.AUTHORIZE, 1, answer(PSPStatus.CAPTURED))
    return order


def notice(status: DisputeStatus, amount: int = 2550, **changes: Any) -> DisputeNotice:
    fields = {
        "dispute_id": "dp_1",
        "status": status,
        "amount": amount,
        "currency": "EUR",
        "fee": 1500,
        "reason": "fraudulent",
        "evidence_due_by": DUE,
    } | changes
    return DisputeNotice(**fields)  # type: ignore[arg-type]


def postings(order: PaymentOrder) -> list[list[tuple[str, int]]]:
    return [
        [(p.account, p.amount) for p in postings_for(e, "EUR")]
        for e in order.collect_events()
        if postings_for(e, "EUR")
    ]


def test_an_opened_dispute_is_on_the_document_and_withdraws_the_money() -> None:
    order = paid()
    assert order.apply_dispute("evt_1", 1, notice(DisputeStatus.NEEDS_RESPONSE), Liability.SELLER)
    assert order.status == OrderStatus.SUCCEEDED  # a dispute never moves the status
    [dispute] = order_document(order)["disputes"]
    assert dispute == {
        "id": "dp_1",
        "status": "needs_response",
        "amount": 2550,
        "reason": "fraudulent",
        "evidence_due_by": "2026-11-30T12:00:00Z",
    }
    assert "disputes" not in order_document(paid())
    *_, opened = postings(order)
    assert opened == [(DISPUTED_FUNDS, 2550), (PSP_FEES, 1500), (PSP_RECEIVABLE, -4050)]
    assert not order.apply_dispute(
        "evt_1", 1, notice(DisputeStatus.NEEDS_RESPONSE), Liability.SELLER
    )


def test_a_won_dispute_gives_the_money_back() -> None:
    order = paid()
    order.apply_dispute("evt_1", 1, notice(DisputeStatus.NEEDS_RESPONSE), Liability.SELLER)
    order.apply_dispute("evt_2", 1, notice(DisputeStatus.WON), Liability.SELLER)
    assert order.disputes["dp_1"].status == DisputeStatus.WON
    *_, closed = postings(order)
    assert closed == [(PSP_RECEIVABLE, 2550), (DISPUTED_FUNDS, -2550)]


@pytest.mark.parametrize("liability", list(Liability))
def test_a_lost_dispute_is_borne_as_the_setting_said_when_it_closed(liability: Liability) -> None:
    order = paid()
    order.apply_dispute("evt_1", 1, notice(DisputeStatus.NEEDS_RESPONSE), liability)
    order.apply_dispute("evt_2", 1, notice(DisputeStatus.LOST), liability)
    assert replayed(order).disputes["dp_1"].status == DisputeStatus.LOST
    *_, closed = postings(order)
    if liability == Liability.SELLER:  # each seller their payout's share; the platform its fee
        expected = [
            (seller_payable("s1"), 1800),
            (seller_payable("s2"), 495),
            (DISPUTE_LOSSES, 255),
        ]
    else:
        expected = [(DISPUTE_LOSSES, 2550)]
    assert closed == [*expected, (DISPUTED_FUNDS, -2550)]


def test_every_posting_set_sums_to_zero() -> None:
    order = paid()
    order.apply_dispute("evt_1", 1, notice(DisputeStatus.NEEDS_RESPONSE, 1000), Liability.SELLER)
    order.apply_dispute("evt_2", 1, notice(DisputeStatus.LOST, 1000), Liability.SELLER)
    for posting_set in postings(order):
        assert sum(amount for _, amount in posting_set) == 0


def test_a_closed_that_overtook_its_created_records_both_once() -> None:
    order = paid()
    assert order.apply_dispute("evt_2", 1, notice(DisputeStatus.WON), Liability.SELLER)
    names = [type(e).__name__ for e in order.collect_events()][-2:]
    assert names == ["DisputeOpened", "DisputeClosed"]
    assert not order.apply_dispute(
        "evt_1", 1, notice(DisputeStatus.NEEDS_RESPONSE), Liability.SELLER
    )
    assert order.disputes["dp_1"].status == DisputeStatus.WON


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"amount": 2551}, "amount"), ({"amount": 0}, "amount"), ({"currency": "USD"}, "currency")],
)
def test_a_dispute_we_cannot_book_faithfully_is_refused_and_changes_nothing(
    changes: dict[str, Any], field: str
) -> None:
    order = paid()
    before = order.version
    with pytest.raises(InvalidInput) as refused:
        order.apply_dispute(
            "evt_1", 1, notice(DisputeStatus.NEEDS_RESPONSE, **changes), Liability.SELLER
        )
    assert refused.value.field == field and order.version == before


def test_disputed_money_is_not_refunded_too_nor_disputed_twice() -> None:
    order = paid()
    order.apply_dispute("evt_1", 1, notice(DisputeStatus.NEEDS_RESPONSE, 2000), Liability.SELLER)
    assert order.refundable_amount == 550
    with pytest.raises(InvalidInput):
        order.request_refund(551, NOW)
    with pytest.raises(InvalidInput):
        order.apply_dispute(
            "evt_2",
            1,
            notice(DisputeStatus.NEEDS_RESPONSE, 551, dispute_id="dp_2"),
            Liability.SELLER,
        )
    order.apply_dispute("evt_3", 1, notice(DisputeStatus.WON, 2000), Liability.SELLER)
    assert order.refundable_amount == 2550  # won back: refundable again


def test_a_dispute_of_a_payment_not_captured_here_yet_is_retried_later() -> None:
    order = placed("manual")
    order.record_result(CallKind.AUTHORIZE, 1, answer(PSPStatus.AUTHORIZED))
    with pytest.raises(IllegalTransition):
        order.apply_dispute("evt_1", 1, notice(DisputeStatus.NEEDS_RESPONSE), Liability.SELLER)
