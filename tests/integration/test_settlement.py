"""The acquirer's daily settlement report is reconciled against our payments and the ledger: one
settlement per day and currency, posted once, chargebacks recorded, mismatches flagged."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import sim_acquirer
from app.extensions import db
from app.models import (
    Conflict,
    LedgerEntry,
    LedgerTransaction,
    LineKind,
    Order,
    OrderStatus,
    Payment,
    PaymentRefund,
    PaymentStatus,
    Settlement,
    SettlementLine,
    SettlementMismatch,
    SpotStatus,
    TicketStatus,
)
from app.models.base import utcnow
from app.services import ledger, payments, refunds, settlement
from app.services.payments import ReportLine, gateway
from app.sim_acquirer.api import acquirer_fee
from app.sim_acquirer.models import SimCharge
from tests.support.builders import login, make_user
from tests.support.money import (
    added,
    available,
    balance,
    happened_days_ago,
    reconcile,
    refund,
    transaction_sums,
)
from tests.support.shop import buy, card_token, payment_of

pytestmark = pytest.mark.usefixtures("acquirer_fees")


def test_the_acquirer_fee_is_a_percentage_rounded_half_up_plus_a_fixed_amount():
    assert acquirer_fee(20000, Decimal("2.5"), 30) == 500 + 30
    assert acquirer_fee(20100, Decimal("2.5"), 30) == 503 + 30  # 502.5 rounds up
    assert acquirer_fee(1219, Decimal("2.5"), 0) == 30  # 30.475 rounds down
    assert acquirer_fee(1234, Decimal("3.99"), 39) == 49 + 39  # 49.2366


def test_a_day_of_sales_a_refund_and_a_chargeback_settles_once(client, on_sale):
    buy(client, on_sale)
    refunded, disputed = payment_of(buy(client, on_sale)), payment_of(buy(client, on_sale))
    refund(refunded)
    assert sim_acquirer.chargeback(disputed.gateway_ref, "fraudulent") is not None
    day = happened_days_ago()

    report = sim_acquirer.settlement_report(day)
    assert report["totals"] == {
        "BRL": {
            "charges_cents": 60000,
            "refunds_cents": 20000,
            "chargebacks_cents": 20000,
            "fees_cents": 3 * 530,
            "net_cents": 60000 - 40000 - 1590,
        }
    }
    # The day before the first sale is due too (the acquirer's clock may run ahead of ours).
    assert reconcile() == [
        added(day - dt.timedelta(days=1)),
        added(day, settlements=1, lines=5, chargebacks=1, postings=1),
    ]

    row = db.session.scalars(select(Settlement)).one()
    assert (row.day, row.currency, row.line_count) == (day, "BRL", 5)
    assert (row.captured_cents, row.refunded_cents, row.charged_back_cents) == (60000, 20000, 20000)
    assert (row.fee_cents, row.net_cents) == (1590, 18410)
    posting = db.session.get(LedgerTransaction, row.ledger_transaction_id)
    assert posting.cause_key == f"settlement:simulated:{day.isoformat()}:BRL"
    # Clearing is empty: everything captured was refunded, charged back or settled.
    assert balance(ledger.CLEARING) == 0
    assert balance(ledger.BANK) == 18410
    assert balance(ledger.GATEWAY_FEES) == 1590
    assert balance(ledger.FEE_REVENUE) == -2200  # the kept sale's fee only
    assert ledger.partner_balance(db.session, on_sale.partner, "BRL") == 17800
    assert transaction_sums() == {0}

    # The chargeback reversed the sale, is recorded as such, and freed the seats.
    db.session.expire_all()
    disputed = db.session.get(Payment, disputed.id)
    assert disputed.status == PaymentStatus.CHARGED_BACK and disputed.charged_back_at
    order = db.session.get(Order, disputed.order_id)
    assert order.status == OrderStatus.REFUNDED
    assert {t.status for t in order.tickets} == {TicketStatus.REVOKED}
    assert {t.spot.status for t in order.tickets} == {SpotStatus.AVAILABLE}
    chargeback = db.session.scalars(
        select(LedgerTransaction).where(LedgerTransaction.kind == "chargeback")
    ).one()
    assert chargeback.cause_key == f"chargeback:payment:{disputed.id}"
    assert "fraudulent" in chargeback.memo
    statement = ledger.partner_statements(db.session, [on_sale.partner_id])[0]
    assert (statement["sales"], statement["refunds"], statement["chargebacks"]) == (
        60000, 20000, 20000,
    )  # fmt: skip
    assert statement["balance"] == (
        statement["sales"] - statement["fees"] - statement["refunds"] - statement["chargebacks"]
        + statement["fees_returned"] - statement["payouts"]
    ) == 17800  # fmt: skip

    # Replaying the day, by the periodic task or on demand, posts nothing twice.
    transactions = db.session.scalar(select(func.count()).select_from(LedgerTransaction))
    assert reconcile() == []
    assert reconcile(day) == [added(day)]
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == transactions
    assert db.session.scalar(select(func.count()).select_from(Settlement)) == 1
    assert balance(ledger.BANK) == 18410


def test_a_day_is_reconciled_only_once_it_is_over(client, on_sale):
    buy(client, on_sale)
    with pytest.raises(Conflict, match="not over yet"):
        settlement.reconcile_day(db.session, gateway(), utcnow().date(), utcnow())
    yesterday = utcnow().date() - dt.timedelta(days=1)
    assert reconcile() == [added(yesterday)]  # today is not due: its sale waits
    assert db.session.scalar(select(func.count()).select_from(Settlement)) == 0


def test_mismatches_are_flagged_for_finance(client, on_sale):
    tampered, missing, matching = (payment_of(buy(client, on_sale)) for _ in range(3))
    with Session(db.engine) as session:
        session.get(SimCharge, tampered.gateway_ref).amount_cents += 100
        session.delete(session.get(SimCharge, missing.gateway_ref))
        session.commit()
    stranger = sim_acquirer.charge(card_token(client), 5000, "BRL", "not-ours")
    assert stranger.status == "succeeded"
    day = happened_days_ago()

    assert reconcile()[-1] == added(day, settlements=1, lines=3, mismatches=3, postings=1)
    flagged = {
        (m.kind, m.line_kind, m.reference, m.expected_cents, m.reported_cents)
        for m in db.session.scalars(select(SettlementMismatch))
    }
    assert flagged == {
        ("amount_differs", "charge", tampered.gateway_ref, 20000, 20100),
        ("missing_from_report", "charge", missing.gateway_ref, 20000, None),
        ("unknown_to_us", "charge", stranger.charge_id, None, 5000),
    }
    row = db.session.scalars(select(Settlement)).one()
    assert row.captured_cents == 20100 + 20000 + 5000
    assert row.fee_cents == 533 + 530 + 155
    # What the acquirer did not settle as we booked it stays in clearing for finance to see.
    assert balance(ledger.CLEARING) == 60000 - (20100 + 20000 + 5000)
    # Only the payment that matched is settled: the others are not paid out.
    assert available(on_sale.partner_id) == matching.net_cents
    assert reconcile(day)[0]["mismatches"] == 0  # flagged once

    make_user("fiona", "Finance")
    login(client, "fiona")
    page = client.get("/settlementmismatchview/list/").get_data(as_text=True)
    assert "amount_differs" in page and "missing_from_report" in page
    assert stranger.charge_id in page
    listing = client.get("/settlementview/list/").get_data(as_text=True)
    assert "R$451.00" in listing and "Settlements" in listing
    shown = client.get(f"/settlementview/show/{row.id}").get_data(as_text=True)
    assert "unknown_to_us" in shown and "R$451.00" in shown
    client.get("/logout/")
    make_user("alice", "Partner", on_sale.partner)
    login(client, "alice")
    assert client.get("/settlementview/list/").status_code == 403
    assert client.get("/settlementmismatchview/list/").status_code == 403


def test_a_day_with_a_payment_still_being_finished_waits(client, on_sale):
    """The acquirer may report a charge we have not confirmed yet (a crash mid-checkout): the day
    waits for the reconcile task to finish it, instead of calling its line unknown for good."""
    paid = payment_of(buy(client, on_sale))
    day = happened_days_ago()
    with Session(db.engine) as session:  # as if the checkout had crashed after charging
        session.get(Payment, paid.id).status = "pending"
        session.commit()
    with pytest.raises(Conflict, match="still being finished"):
        settlement.reconcile_day(db.session, gateway(), day, utcnow())
    db.session.rollback()
    assert day.isoformat() not in {r["day"] for r in reconcile()}
    with Session(db.engine) as session:
        session.get(Payment, paid.id).status = "captured"
        session.commit()
    [summary] = [r for r in reconcile() if r["day"] == day.isoformat()]
    assert summary["mismatches"] == 0 and summary["lines"] == 1


def reported_again(monkeypatch, payment: Payment, day: dt.date) -> str:
    """The acquirer's report of ``day`` has the payment's charge once more, as a line of its own
    (its own id, its own fee). Returns that line's id."""
    real = payments.SimulatedGateway.settlement_report
    again = ReportLine(
        kind=LineKind.CHARGE,
        line_ref=f"{payment.gateway_ref}-again",
        charge_ref=payment.gateway_ref,
        amount_cents=payment.amount_cents,
        currency=payment.currency,
        fee_cents=acquirer_fee(payment.amount_cents, Decimal("2.5"), 30),
    )

    def with_the_charge_again(self, wanted: dt.date):
        report = real(self, wanted)
        if wanted != day:
            return report
        return dataclasses.replace(report, lines=(*report.lines, again))

    monkeypatch.setattr(payments.SimulatedGateway, "settlement_report", with_the_charge_again)
    return again.line_ref


def test_a_charge_reported_twice_settles_its_payment_once(client, on_sale, monkeypatch):
    """The second line is flagged and settles nothing: the sale is paid out once. The posting
    still follows the report, as for any line flagged (the acquirer paid both lines): clearing
    shows what it paid too much, for finance to claim back."""
    paid = payment_of(buy(client, on_sale))
    day = happened_days_ago()
    duplicate = reported_again(monkeypatch, paid, day)

    assert reconcile(day) == [added(day, settlements=1, lines=2, mismatches=1, postings=1)]
    lines = db.session.scalars(select(SettlementLine).order_by(SettlementLine.id)).all()
    assert [(line.line_ref, line.payment_id) for line in lines] == [
        (paid.gateway_ref, paid.id),
        (duplicate, None),
    ]
    flag = db.session.scalars(select(SettlementMismatch)).one()
    assert (flag.kind, flag.line_kind, flag.reference, flag.payment_id) == (
        "unexpected_state", "charge", paid.gateway_ref, paid.id,
    )  # fmt: skip
    assert (flag.expected_cents, flag.reported_cents) == (None, 20000)
    assert paid.gateway_ref in flag.detail and "again" in flag.detail
    assert available(on_sale.partner_id) == paid.net_cents
    assert balance(ledger.BANK) == 2 * (20000 - 530)
    assert balance(ledger.CLEARING) == -20000
    assert reconcile(day) == [added(day)]  # flagged once


def test_a_charge_reported_again_on_a_later_day_is_flagged_that_day(client, on_sale, monkeypatch):
    paid = payment_of(buy(client, on_sale))
    day = happened_days_ago(2)
    next_day = day + dt.timedelta(days=1)
    reported_again(monkeypatch, paid, next_day)

    assert reconcile() == [
        added(day - dt.timedelta(days=1)),
        added(day, settlements=1, lines=1, postings=1),
        added(next_day, settlements=1, lines=1, mismatches=1, postings=1),
    ]
    flag = db.session.scalars(select(SettlementMismatch)).one()
    assert (flag.settlement.day, flag.kind, flag.reference) == (
        next_day, "unexpected_state", paid.gateway_ref,
    )  # fmt: skip
    settling = select(SettlementLine.line_ref).where(SettlementLine.payment_id == paid.id)
    assert db.session.scalars(settling).all() == [paid.gateway_ref]  # not the duplicate


def test_a_day_with_a_refund_still_being_finished_waits(client, on_sale, monkeypatch):
    """The acquirer refunded but its answer was lost: our refund stays pending until the reconcile
    task finishes it, the next day say. The day waits for it, as for a payment being finished,
    instead of flagging the acquirer's refund line then (unexpected), and our refund on the day
    it is finished (missing), and never matching them."""
    paid = payment_of(buy(client, on_sale))
    refund_at_the_acquirer = payments.SimulatedGateway.refund

    def answer_lost(self, reference, amount, key=None):
        refund_at_the_acquirer(self, reference, amount, key)
        raise ConnectionError("the acquirer refunded, then the connection dropped")

    monkeypatch.setattr(payments.SimulatedGateway, "refund", answer_lost)
    with pytest.raises(ConnectionError):
        refund(paid)
    monkeypatch.undo()
    db.session.rollback()
    day = happened_days_ago(2)

    with pytest.raises(Conflict, match="still being finished"):
        settlement.reconcile_day(db.session, gateway(), day, utcnow())
    db.session.rollback()
    assert reconcile() == [added(day - dt.timedelta(days=1))]  # the day and the next one wait
    assert refunds.finish_pending_refunds(db.session, gateway(), utcnow() + dt.timedelta(minutes=5))
    next_day = happened_days_ago(1)  # it was finished the next day

    assert reconcile() == [
        added(day, settlements=1, lines=2, postings=1),
        added(next_day, settlements=1),  # our refund that day: reported already, nothing moved
    ]
    assert db.session.scalars(select(SettlementMismatch)).all() == []
    ours = db.session.scalars(select(PaymentRefund)).one()
    line = db.session.scalars(select(SettlementLine).where(SettlementLine.kind == "refund")).one()
    assert (line.payment_refund_id, line.payment_id) == (ours.id, paid.id)
    assert balance(ledger.CLEARING) == 0
    assert transaction_sums() == {0}


def test_the_database_refuses_a_second_charge_line_settling_a_payment(client, on_sale):
    paid = payment_of(buy(client, on_sale))
    day = happened_days_ago()
    reconcile(day)
    first = db.session.scalars(select(SettlementLine)).one()
    again = SettlementLine(
        settlement_id=first.settlement_id,
        kind="charge",
        line_ref=f"{first.line_ref}-again",
        charge_ref=first.charge_ref,
        payment_id=paid.id,
        amount_cents=first.amount_cents,
    )
    db.session.add(again)
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


@pytest.mark.concurrency
def test_two_days_reconciled_at_once_settle_a_charge_once(app, client, on_sale, monkeypatch):
    """Two days reconciled at the same moment (the periodic task and finance asking), each report
    with the charge: however they interleave, one line settles the payment, the other is
    flagged."""
    paid = payment_of(buy(client, on_sale))
    day = happened_days_ago(2)
    next_day = day + dt.timedelta(days=1)
    reported_again(monkeypatch, paid, next_day)
    checked, calls = threading.Barrier(2), itertools.count()
    check = settlement._charged_again

    def both_check_before_either_records(session, line, payment):
        problem = check(session, line, payment)
        if next(calls) < 2:  # the first check of each run, not a replay's
            checked.wait(5)
        return problem

    monkeypatch.setattr(settlement, "_charged_again", both_check_before_either_records)

    def run(wanted: dt.date) -> dict:
        with app.app_context():
            session = Session(db.engine)
            try:
                return settlement.reconcile_day(session, gateway(), wanted, utcnow())
            finally:
                session.close()

    with ThreadPoolExecutor(2) as pool:
        summaries = list(pool.map(run, [day, next_day]))
    assert sum(s["lines"] for s in summaries) == 2
    settling = select(SettlementLine.line_ref).where(SettlementLine.payment_id == paid.id)
    assert len(db.session.scalars(settling).all()) == 1
    flag = db.session.scalars(select(SettlementMismatch)).one()
    assert (flag.kind, flag.reference) == ("unexpected_state", paid.gateway_ref)


def posted_by_settlements() -> dict[str, int]:
    """What every settlement posting moved, by account: clearing -> bank and the acquirer's fee."""
    rows = db.session.execute(
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_cents))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerTransaction.kind == "settlement")
        .group_by(LedgerEntry.account_id)
    ).all()
    codes = {ledger.account_id(db.session, code): code for code in ledger.PLATFORM_ACCOUNTS}
    return {codes[account]: int(total) for account, total in rows}


def test_a_day_reconciled_again_after_its_report_gained_lines_posts_exactly_the_difference(
    client, on_sale
):
    """The acquirer's report of a day reconciled already gains a line (a charge it had not
    reported yet): reconciling the day again settles that payment and moves exactly its money
    from clearing to the bank, less its fee. Before, the line settled its payment (so a payout
    could pay it) while its money stayed in clearing."""
    first = payment_of(buy(client, on_sale))
    day = happened_days_ago()
    assert reconcile(day) == [added(day, settlements=1, lines=1, postings=1)]
    row = db.session.scalars(select(Settlement)).one()
    first_posting = row.ledger_transaction_id
    late = payment_of(buy(client, on_sale))
    assert happened_days_ago() == day  # the acquirer now reports it on that day

    assert reconcile(day) == [added(day, lines=1, postings=1)]
    db.session.expire_all()
    row = db.session.scalars(select(Settlement)).one()
    assert row.ledger_transaction_id == first_posting
    fee = acquirer_fee(20000, Decimal("2.5"), 30)
    assert (row.captured_cents, row.fee_cents, row.net_cents, row.line_count) == (
        40000, 2 * fee, 40000 - 2 * fee, 2,
    )  # fmt: skip
    correction = db.session.scalars(
        select(LedgerTransaction).where(
            LedgerTransaction.kind == "settlement", LedgerTransaction.id != first_posting
        )
    ).one()
    assert correction.cause_key == f"settlement:simulated:{day.isoformat()}:BRL:2"
    assert {e.account.code: e.amount_cents for e in correction.entries} == {
        ledger.BANK: 20000 - fee,
        ledger.GATEWAY_FEES: fee,
        ledger.CLEARING: -20000,
    }
    # Every settled payment's money left clearing: the settlements posted their lines, exactly.
    settled = db.session.scalars(
        select(SettlementLine.payment_id).where(SettlementLine.payment_id.is_not(None))
    ).all()
    assert sorted(settled) == sorted([first.id, late.id])
    assert balance(ledger.CLEARING) == 0
    assert balance(ledger.BANK) == 2 * (20000 - fee)
    assert posted_by_settlements() == {
        ledger.BANK: row.net_cents, ledger.GATEWAY_FEES: row.fee_cents, ledger.CLEARING: -40000,
    }  # fmt: skip
    assert transaction_sums() == {0}

    # Replaying it again posts nothing; the payout pays what reached the bank, no more.
    assert reconcile(day) == [added(day)]
    assert available(on_sale.partner_id) == 2 * 17800
    assert balance(ledger.BANK) >= 2 * 17800
