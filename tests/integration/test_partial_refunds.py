"""A partner or the platform refunds some tickets of a paid order: the card gets exactly their
prices back, once, the tickets are revoked and their seats go back on sale, the ledger and the
partner's statement stay exact to the cent, and settlement matches each partial refund."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import sim_acquirer
from app.extensions import db
from app.models import (
    Conflict,
    DomainError,
    LedgerTransaction,
    NotFound,
    Order,
    OrderStatus,
    Payment,
    PaymentRefund,
    PaymentStatus,
    SettlementLine,
    SettlementMismatch,
    SpotStatus,
    TicketStatus,
)
from app.models.base import utcnow
from app.services import ledger, payments, refunds
from app.services.checkin import arming
from app.services.payments import gateway
from app.services.scoping import SYSTEM
from app.sim_acquirer.models import SimRefund
from tests.support.builders import PartnerActor, login, make_partner, make_user
from tests.support.money import added, happened_days_ago, reconcile, transaction_sums
from tests.support.shop import buy, sign_up

PRICE = 10005
# 10 % of BRL 300.15 rounded half up (30.02) plus BRL 1.00 a ticket: BRL 33.02, which three
# tickets do not share evenly.
FEE = 3302


@pytest.fixture
def buyer(client) -> dict[str, str]:
    """The customer's API headers."""
    return sign_up(client)


@pytest.fixture
def order(client, on_sale, buyer):
    """A paid order of three seats at BRL 100.05 each."""
    on_sale.sections[0].price_cents = PRICE
    db.session.commit()
    paid = db.session.get(Order, buy(client, on_sale, 3, buyer=buyer)["id"])
    assert paid.payments[0].fee_cents == FEE
    return paid


@pytest.fixture
def revocations(monkeypatch):
    """What the armed gates were told, (event id, ticket ids) per push."""
    pushed = []
    monkeypatch.setattr(
        arming, "note_revoked", lambda event_id, ids: pushed.append((event_id, ids))
    )
    return pushed


def refund(order: Order, tickets, actor=None) -> Order:
    actor = actor or PartnerActor(order.event.partner)
    return refunds.refund_tickets(db.session, gateway(), order.id, [t.id for t in tickets], actor)


def reload(order: Order) -> Order:
    db.session.expire_all()
    return db.session.get(Order, order.id)


def acquirer_refunds(order: Order) -> list[int]:
    """What the acquirer gave back to the order's card, refund by refund."""
    charge = order.payments[0].gateway_ref
    with Session(db.engine) as session:
        return list(
            session.scalars(
                select(SimRefund.amount_cents)
                .where(SimRefund.charge_id == charge)
                .order_by(SimRefund.created_at, SimRefund.id)
            )
        )


def refund_postings() -> list[str]:
    kinds = select(LedgerTransaction.cause_key).where(LedgerTransaction.kind == "refund")
    return list(db.session.scalars(kinds.order_by(LedgerTransaction.id)))


def statement(order: Order) -> dict:
    line = ledger.partner_statements(db.session, [order.event.partner_id])[0]
    assert line["balance"] == (
        line["sales"] - line["fees"] - line["refunds"] - line["chargebacks"]
        + line["fees_returned"] - line["payouts"]
    )  # fmt: skip
    return line


def fee_revenue() -> int:
    return ledger.balance(db.session, ledger.account_id(db.session, ledger.FEE_REVENUE), "BRL")


def test_one_ticket_then_the_other_two_are_refunded_exactly(client, buyer, order, revocations):
    first, *rest = order.tickets
    payment_id = order.payments[0].id

    refund(order, [first])
    order = reload(order)
    assert order.status == OrderStatus.PAID  # two tickets still admit
    assert [t.status for t in order.tickets] == ["revoked", "valid", "valid"]
    assert [t.spot.status for t in order.tickets] == ["available", "sold", "sold"]
    assert acquirer_refunds(order) == [PRICE]  # the card got that ticket's price back, once
    payment = db.session.get(Payment, payment_id)
    assert (payment.status, payment.refunded_cents, payment.refunded_at) == (
        PaymentStatus.CAPTURED, PRICE, None,
    )  # fmt: skip
    assert refund_postings() == [f"refund:payment:{payment_id}:tickets:{first.id}"]
    assert transaction_sums() == {0}
    share = FEE * PRICE // (3 * PRICE)  # proportional, rounded down
    assert share == 1100 and payment.refunds[0].fee_share_cents == share
    assert ledger.partner_balance(db.session, order.event.partner, "BRL") == (
        3 * PRICE - FEE - (PRICE - share)
    ) == 17808  # fmt: skip
    assert fee_revenue() == -(FEE - share)
    line = statement(order)
    assert [line[k] for k in ("sales", "fees", "refunds", "fees_returned", "balance")] == [
        3 * PRICE, FEE, PRICE, share, 17808,
    ]  # fmt: skip
    assert revocations == [(order.event_id, [first.id])]  # armed gates learn it at once
    mine = client.get("/api/v1/orders/", headers=buyer).get_json()["result"][0]
    assert (mine["status"], mine["payments"][0]["refunded_cents"]) == ("paid", PRICE)
    assert [t["status"] for t in mine["tickets"]] == ["revoked", "valid", "valid"]
    # The seat is on sale again.
    other = sign_up(client, "bia@example.com", "Bia")
    again = client.post(
        "/api/v1/holds/", json={"event_id": order.event_id, "spot_ids": [first.spot_id]},
        headers=other,
    )  # fmt: skip
    assert again.status_code == 201, again.get_json()

    refund(order, rest)
    order = reload(order)
    assert order.status == OrderStatus.REFUNDED
    assert {t.status for t in order.tickets} == {TicketStatus.REVOKED}
    assert acquirer_refunds(order) == [PRICE, 2 * PRICE]
    payment = db.session.get(Payment, payment_id)
    assert payment.status == PaymentStatus.REFUNDED and payment.refunded_at is not None
    assert payment.refunded_cents == payment.amount_cents == 3 * PRICE
    # The last refund returns the rest of the fee: the shares add up to it to the cent.
    assert [r.fee_share_cents for r in payment.refunds] == [1100, FEE - 1100]
    assert ledger.partner_balance(db.session, order.event.partner, "BRL") == 0
    assert fee_revenue() == 0
    line = statement(order)
    assert (line["refunds"], line["fees_returned"], line["balance"]) == (3 * PRICE, FEE, 0)
    assert transaction_sums() == {0}
    assert revocations[-1] == (order.event_id, [t.id for t in rest])


def test_when_the_platform_keeps_its_fee_the_partner_bears_each_share(app, order):
    app.config["REFUND_RETURNS_PLATFORM_FEE"] = False
    try:
        refund(order, order.tickets[:1])
        refund(order, order.tickets[1:])
    finally:
        app.config["REFUND_RETURNS_PLATFORM_FEE"] = True
    assert ledger.partner_balance(db.session, order.event.partner, "BRL") == -FEE
    assert fee_revenue() == -FEE
    assert statement(order)["fees_returned"] == 0


def test_a_retry_after_a_crash_refunds_the_card_once(order, monkeypatch):
    first = order.tickets[0]
    real_refund = payments.SimulatedGateway.refund
    keys = []

    def refunded_but_the_answer_was_lost(self, reference, amount, key=None):
        real_refund(self, reference, amount, key)
        keys.append(key)
        raise ConnectionError("the processor refunded, then the connection dropped")

    monkeypatch.setattr(payments.SimulatedGateway, "refund", refunded_but_the_answer_was_lost)
    with pytest.raises(ConnectionError):
        refund(order, [first])
    monkeypatch.undo()
    db.session.rollback()
    order = reload(order)
    # The card got the money back; our books do not know it yet, the refund waits to be finished.
    assert acquirer_refunds(order) == [PRICE]
    assert order.tickets[0].status == TicketStatus.VALID
    pending = db.session.scalars(select(PaymentRefund)).one()
    assert (pending.status, pending.idempotency_key) == ("pending", keys[0])

    refund(order, [first])  # asked again: the same refund, under the same key
    order = reload(order)
    assert acquirer_refunds(order) == [PRICE]  # once
    assert order.tickets[0].status == TicketStatus.REVOKED
    assert order.payments[0].refunded_cents == PRICE
    assert refund_postings() == [keys[0]]
    # The acquirer answers a key it knows as the first time, giving nothing more back.
    assert sim_acquirer.refund(order.payments[0].gateway_ref, PRICE, keys[0]) is True
    assert acquirer_refunds(order) == [PRICE]


def test_a_full_refund_finishes_an_interrupted_partial_one_first(order, monkeypatch):
    real_refund = payments.SimulatedGateway.refund

    def crash_after_refunding(self, reference, amount, key=None):
        real_refund(self, reference, amount, key)
        raise ConnectionError("lost")

    monkeypatch.setattr(payments.SimulatedGateway, "refund", crash_after_refunding)
    with pytest.raises(ConnectionError):
        refund(order, order.tickets[:1])
    monkeypatch.undo()
    db.session.rollback()

    refunds.refund_order(db.session, gateway(), order.id, SYSTEM)
    order = reload(order)
    assert order.status == OrderStatus.REFUNDED
    assert acquirer_refunds(order) == [PRICE, 2 * PRICE]  # never more than was paid
    assert order.payments[0].status == PaymentStatus.REFUNDED
    assert len(refund_postings()) == 2 and transaction_sums() == {0}
    assert ledger.partner_balance(db.session, order.event.partner, "BRL") == 0
    assert fee_revenue() == 0


def test_a_refund_the_processor_refuses_leaves_the_tickets_as_they_were(order, monkeypatch):
    monkeypatch.setattr(payments.SimulatedGateway, "refund", lambda *args: False)
    with pytest.raises(refunds.RefundFailed):
        refund(order, order.tickets[:2])
    monkeypatch.undo()
    order = reload(order)
    assert {t.status for t in order.tickets} == {TicketStatus.VALID}
    assert db.session.scalars(select(PaymentRefund)).all() == []
    assert order.payments[0].refunded_cents == 0 and refund_postings() == []
    refund(order, order.tickets[:1])  # free to be refunded later
    assert acquirer_refunds(order) == [PRICE]


def test_a_ticket_is_refunded_once(order):
    first, second, _ = order.tickets
    refund(order, [first])
    with pytest.raises(Conflict, match=rf"Already refunded: ticket {first.id}\.") as refused:
        refund(order, [first, second])
    assert refused.value.extra == {"tickets": [first.id]}
    with pytest.raises(Conflict, match="Already refunded"):
        refunds.refund_tickets(db.session, gateway(), order.id, [first.id], SYSTEM)
    db.session.rollback()
    order = reload(order)
    assert [t.status for t in order.tickets] == ["revoked", "valid", "valid"]
    assert acquirer_refunds(order) == [PRICE]


def test_another_partners_order_or_ticket_is_not_found(order):
    stranger = PartnerActor(make_partner("Other"))
    with pytest.raises(NotFound):
        refund(order, order.tickets[:1], stranger)
    db.session.rollback()
    with pytest.raises(NotFound):
        refunds.refund_tickets(db.session, gateway(), order.id, [order.tickets[0].id + 999], SYSTEM)
    db.session.rollback()
    order = reload(order)
    assert {t.status for t in order.tickets} == {TicketStatus.VALID}
    assert acquirer_refunds(order) == []


def test_a_chargeback_after_a_partial_refund_takes_back_only_the_rest(order):
    refund(order, order.tickets[:1])
    payment = order.payments[0]
    taken = sim_acquirer.chargeback(payment.gateway_ref, "fraudulent")
    assert taken["amount_cents"] == 2 * PRICE
    day = happened_days_ago()

    assert reconcile(day) == [added(day, settlements=1, lines=3, chargebacks=1, postings=1)]
    assert db.session.scalars(select(SettlementMismatch)).all() == []
    order = reload(order)
    assert order.status == OrderStatus.REFUNDED
    assert {t.status for t in order.tickets} == {TicketStatus.REVOKED}
    assert [t.spot.status for t in order.tickets] == [SpotStatus.AVAILABLE] * 3
    payment = db.session.get(Payment, payment.id)
    assert payment.status == PaymentStatus.CHARGED_BACK and payment.refunded_cents == PRICE
    chargeback = db.session.scalars(
        select(LedgerTransaction).where(LedgerTransaction.kind == "chargeback")
    ).one()
    entries = sorted(e.amount_cents for e in chargeback.entries)
    assert entries == [-2 * PRICE, FEE - 1100, 2 * PRICE - (FEE - 1100)]
    assert ledger.partner_balance(db.session, order.event.partner, "BRL") == 0
    assert fee_revenue() == 0
    line = statement(order)
    assert (line["refunds"], line["chargebacks"], line["fees_returned"]) == (PRICE, 2 * PRICE, FEE)
    clearing = ledger.account_id(db.session, ledger.CLEARING)
    assert ledger.balance(db.session, clearing, "BRL") == 0
    assert transaction_sums() == {0}


def test_a_day_with_partial_refunds_settles_without_mismatches(order):
    first, second, _ = order.tickets
    refund(order, [first])
    refund(order, [second], SYSTEM)  # two refunds of one charge, of the same amount
    day = happened_days_ago()

    assert reconcile(day) == [added(day, settlements=1, lines=3, postings=1)]
    assert db.session.scalars(select(SettlementMismatch)).all() == []
    lines = db.session.scalars(
        select(SettlementLine).where(SettlementLine.kind == "refund").order_by(SettlementLine.id)
    ).all()
    ours = db.session.scalars(select(PaymentRefund.id).order_by(PaymentRefund.id)).all()
    assert sorted(line.payment_refund_id for line in lines) == ours  # each matched once
    assert {line.payment_id for line in lines} == {order.payments[0].id}
    clearing = ledger.account_id(db.session, ledger.CLEARING)
    assert ledger.balance(db.session, clearing, "BRL") == 0
    assert reconcile(day) == [added(day)]  # replaying the day flags nothing


def test_a_partial_refund_the_acquirer_reports_differently_is_flagged(order):
    refund(order, order.tickets[:1])
    charge = order.payments[0].gateway_ref
    with Session(db.engine) as session:
        session.scalars(select(SimRefund)).one().amount_cents += 1
        session.commit()
    day = happened_days_ago()

    assert reconcile(day)[0]["mismatches"] == 2
    flagged = {
        (m.kind, m.line_kind, m.reference, m.expected_cents, m.reported_cents)
        for m in db.session.scalars(select(SettlementMismatch))
    }
    assert flagged == {
        ("amount_differs", "refund", charge, PRICE, PRICE + 1),
        ("missing_from_report", "refund", charge, PRICE, None),
    }


def _ticket_boxes(page: str) -> list[int]:
    return [int(v) for v in re.findall(r'type="checkbox" value="(\d+)"', page)]


def test_the_dashboard_refunds_the_tickets_ticked(client, order):
    make_user("alice", "Partner", order.event.partner)
    login(client, "alice")
    first = order.tickets[0]
    assert "Refund tickets" in client.get(f"/orderview/show/{order.id}").get_data(as_text=True)
    go = client.post(f"/orderview/action/refund_tickets/{order.id}")
    assert go.status_code == 302 and go.location.endswith(f"/orderview/refund_tickets/{order.id}")
    form = client.get(f"/orderview/refund_tickets/{order.id}").get_data(as_text=True)
    assert _ticket_boxes(form) == [t.id for t in order.tickets]
    assert "R$100.05" in form and " required " not in form  # none of the boxes on its own

    nothing = client.post(f"/orderview/refund_tickets/{order.id}", data={})
    assert nothing.status_code == 200
    assert "Tick at least one ticket to refund." in nothing.get_data(as_text=True)
    assert acquirer_refunds(order) == []

    done = client.post(
        f"/orderview/refund_tickets/{order.id}", data={"tickets": [str(first.id)]},
        follow_redirects=True,
    )  # fmt: skip
    assert f"1 ticket(s) of order {order.id} refunded." in done.get_data(as_text=True)
    assert acquirer_refunds(order) == [PRICE]
    form = client.get(f"/orderview/refund_tickets/{order.id}").get_data(as_text=True)
    assert _ticket_boxes(form) == [t.id for t in order.tickets[1:]]  # only valid ones
    # A ticket already refunded is no choice any more.
    again = client.post(
        f"/orderview/refund_tickets/{order.id}", data={"tickets": [str(first.id)]}
    ).get_data(as_text=True)
    assert f"'{first.id}' is not a valid choice" in again
    assert acquirer_refunds(order) == [PRICE]
    # The full refund takes the rest.
    client.post(f"/orderview/action/refund/{order.id}")
    assert reload(order).status == OrderStatus.REFUNDED
    assert acquirer_refunds(order) == [PRICE, 2 * PRICE]


def test_only_the_orders_partner_and_admins_refund_tickets(client, order):
    make_user("bob", "Partner", make_partner("Other"))
    make_user("fiona", "Finance")
    make_user("root", "Admin")
    ticket = str(order.tickets[0].id)
    login(client, "bob")
    assert client.get(f"/orderview/refund_tickets/{order.id}").status_code == 404
    refused = client.post(f"/orderview/refund_tickets/{order.id}", data={"tickets": [ticket]})
    assert refused.status_code == 404
    assert client.post(f"/orderview/action/refund_tickets/{order.id}").status_code == 404
    client.get("/logout/")
    login(client, "fiona")
    shown = client.get(f"/orderview/show/{order.id}")
    assert shown.status_code == 200 and "Refund tickets" not in shown.get_data(as_text=True)
    assert client.post(f"/orderview/action/refund_tickets/{order.id}").status_code == 403
    client.post(f"/orderview/refund_tickets/{order.id}", data={"tickets": [ticket]})
    assert acquirer_refunds(order) == []
    client.get("/logout/")
    login(client, "root")
    client.post(f"/orderview/refund_tickets/{order.id}", data={"tickets": [ticket]})
    assert acquirer_refunds(order) == [PRICE]
    count = select(func.count()).select_from(PaymentRefund)
    assert db.session.scalar(count) == 1


@pytest.mark.concurrency
def test_concurrent_refunds_of_one_order_give_back_what_was_paid_once(app, order):
    """Staff refunding a ticket while others refund the whole order, all at once: whatever wins,
    the card gets the order's total back exactly once and the books agree."""
    first_id, order_id = order.tickets[0].id, order.id
    start = threading.Barrier(8)

    def attempt(n: int) -> str:
        with app.app_context():
            session = Session(db.engine)
            start.wait(5)
            try:
                if n % 2:
                    refunds.refund_tickets(session, gateway(), order_id, [first_id], SYSTEM)
                else:
                    refunds.refund_order(session, gateway(), order_id, SYSTEM)
                return "ok"
            except DomainError as err:
                return err.code
            finally:
                session.close()

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert set(outcomes) <= {"ok", "conflict", "busy"}, outcomes
    refunds.refund_order(db.session, gateway(), order_id, SYSTEM)  # whatever is left
    order = reload(order)
    assert order.status == OrderStatus.REFUNDED
    assert sum(acquirer_refunds(order)) == 3 * PRICE
    ours = db.session.scalars(select(PaymentRefund)).all()
    assert {r.status for r in ours} == {"done"} and len(acquirer_refunds(order)) == len(ours)
    assert len(refund_postings()) == len(ours) and transaction_sums() == {0}
    assert ledger.partner_balance(db.session, order.event.partner, "BRL") == 0


def _crash_mid_refund(order, monkeypatch, tickets):
    real_refund = payments.SimulatedGateway.refund

    def refunded_but_the_answer_was_lost(self, reference, amount, key=None):
        real_refund(self, reference, amount, key)
        raise ConnectionError("the processor refunded, then the connection dropped")

    monkeypatch.setattr(payments.SimulatedGateway, "refund", refunded_but_the_answer_was_lost)
    with pytest.raises(ConnectionError):
        refund(order, tickets)
    monkeypatch.undo()
    db.session.rollback()


def test_the_reconcile_task_finishes_a_refund_a_crash_left_pending(order, monkeypatch):
    import datetime as dt

    from app.services.purchase import reconcile

    _crash_mid_refund(order, monkeypatch, order.tickets[:1])
    assert (
        reconcile.reconcile_payments(db.session, gateway(), utcnow())["pending_refunds_finished"]
        == 0
    )  # too fresh: it may still be finishing
    later = utcnow() + dt.timedelta(minutes=5)
    assert refunds.finish_pending_refunds(db.session, gateway(), later) == 1
    order = reload(order)
    assert acquirer_refunds(order) == [PRICE]  # the card was refunded once
    assert order.tickets[0].status == TicketStatus.REVOKED
    assert db.session.scalars(select(PaymentRefund.status)).all() == ["done"]


def test_a_chargeback_while_a_refund_is_pending_is_left_for_finance(order, monkeypatch):
    _crash_mid_refund(order, monkeypatch, order.tickets[:1])
    payment_id = reload(order).payments[0].id
    with pytest.raises(Conflict, match="refund in progress"):
        refunds.record_chargeback(db.session, payment_id, "fraudulent", utcnow())
    db.session.rollback()
    order = reload(order)
    assert order.status == OrderStatus.PAID and order.payments[0].status == "captured"
