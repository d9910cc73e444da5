"""Payouts pay a partner its settled balance once: finance approves and marks them paid with the
bank reference, which posts partner payable -> bank; a partner reads only its own."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import (
    Conflict,
    Forbidden,
    LedgerTransaction,
    Partner,
    PartnerUser,
    Payout,
    PayoutItem,
    PayoutStatus,
)
from app.models.base import utcnow
from app.services import ledger, partners, payouts
from tests.support.builders import PartnerActor, login, make_event, make_partner, make_user
from tests.support.money import (
    available,
    balance,
    create_payouts,
    happened_days_ago,
    reconcile,
    refund,
)
from tests.support.shop import buy, payment_of

pytestmark = pytest.mark.usefixtures("acquirer_fees")


@pytest.fixture
def settled(client, on_sale):
    """Two days ago: two sales, one refunded, reconciled. Today: one more sale, not settled."""
    kept, refunded = payment_of(buy(client, on_sale)), payment_of(buy(client, on_sale))
    refund(refunded)
    reconcile(happened_days_ago(2))
    unsettled = payment_of(buy(client, on_sale))
    make_user("fiona", "Finance")
    make_user("alice", "Partner", on_sale.partner)
    return {"partner": on_sale.partner, "kept": kept, "refunded": refunded, "new": unsettled}


def test_a_payout_covers_the_settled_balance_only_and_is_created_once(settled):
    partner = settled["partner"]
    assert ledger.partner_balance(db.session, partner, "BRL") == 2 * 17800
    funds = payouts.funds(db.session, partner.id, "BRL", utcnow())
    assert (funds.balance, funds.pending, funds.reserve, funds.available) == (
        2 * 17800, 17800, 0, 17800,
    )  # fmt: skip

    [payout_id] = create_payouts()
    payout = db.session.get(Payout, payout_id)
    assert (payout.partner_id, payout.currency, payout.amount_cents) == (partner.id, "BRL", 17800)
    assert payout.status == PayoutStatus.PENDING
    statement = {(item.ledger_transaction.cause_key, item.amount_cents) for item in payout.items}
    assert statement == {
        (f"capture:payment:{settled['kept'].id}", 17800),
        (f"capture:payment:{settled['refunded'].id}", 17800),
        (f"refund:payment:{settled['refunded'].id}", -17800),
    }
    assert sum(item.amount_cents for item in payout.items) == payout.amount_cents

    assert create_payouts() == []  # nothing new is settled: nothing new is paid
    funds = payouts.funds(db.session, partner.id, "BRL", utcnow())
    assert (funds.in_payouts, funds.available) == (17800, 0)

    # Once today's sale is settled, the next payout covers it alone.
    happened_days_ago()
    reconcile()
    [second] = create_payouts()
    assert db.session.get(Payout, second).amount_cents == settled["new"].net_cents
    covered = db.session.scalars(select(PayoutItem.ledger_transaction_id)).all()
    assert len(covered) == len(set(covered)) == 4


def test_finance_approves_and_marks_paid_which_posts_payable_to_bank(client, settled):
    partner = settled["partner"]
    [payout_id] = create_payouts()
    bank_before = balance(ledger.BANK)
    login(client, "fiona")
    page = client.post(f"/payoutview/action/approve/{payout_id}", follow_redirects=True)
    assert "1 payout(s) approved." in page.get_data(as_text=True)
    assert db.session.get(Payout, payout_id).status == PayoutStatus.APPROVED

    form = client.get(f"/payoutview/paid/{payout_id}")
    assert form.status_code == 200 and "Bank reference" in form.get_data(as_text=True)
    paid = client.post(f"/payoutview/paid/{payout_id}", data={"bank_reference": " TED 2026-0001 "})
    assert paid.status_code == 302
    payout = db.session.get(Payout, payout_id)
    assert payout.status == PayoutStatus.PAID and payout.bank_reference == "TED 2026-0001"
    assert payout.paid_by.username == "fiona" and payout.approved_by.username == "fiona"
    posting = db.session.get(LedgerTransaction, payout.ledger_transaction_id)
    assert (posting.kind, posting.cause_key) == ("payout", f"payout:{payout_id}")
    assert {e.account.code: e.amount_cents for e in posting.entries} == {
        f"partner_payable:{partner.id}": 17800,
        ledger.BANK: -17800,
    }
    assert ledger.partner_balance(db.session, partner, "BRL") == 2 * 17800 - 17800
    assert balance(ledger.BANK) == bank_before - 17800
    statement = ledger.partner_statements(db.session, [partner.id])[0]
    assert statement["payouts"] == 17800 and statement["balance"] == 17800

    again = client.post(
        f"/payoutview/paid/{payout_id}", data={"bank_reference": "TED 2"}, follow_redirects=True
    )
    assert "only an approved payout is marked paid" in again.get_data(as_text=True)
    kinds = db.session.scalars(select(LedgerTransaction.kind)).all()
    assert kinds.count("payout") == 1


def test_a_payout_is_paid_only_once_approved_and_with_a_bank_reference(client, settled):
    [payout_id] = create_payouts()
    login(client, "fiona")
    early = client.post(f"/payoutview/paid/{payout_id}", data={"bank_reference": "TED 1"})
    assert "only an approved payout is marked paid" in early.get_data(as_text=True)
    client.post(f"/payoutview/action/approve/{payout_id}")
    empty = client.post(f"/payoutview/paid/{payout_id}", data={"bank_reference": "  "})
    assert empty.status_code == 200
    field = empty.get_data(as_text=True).split('id="bank_reference"')[1]
    assert "Give the bank transfer's reference." in field  # at the field, the form kept
    assert db.session.get(Payout, payout_id).status == PayoutStatus.APPROVED
    assert db.session.scalar(
        select(func.count()).where(LedgerTransaction.kind == "payout")
    ) == 0  # fmt: skip


def test_a_partner_sees_only_its_own_payouts_and_cannot_move_them(client, settled):
    other = make_partner("Bossa")
    make_user("bob", "Partner", other)
    event = make_event(other, "Bossa Night")
    event.publish()
    db.session.commit()
    buy(client, event)
    happened_days_ago()
    reconcile()
    ours, theirs = sorted(create_payouts())
    assert db.session.get(Payout, theirs).partner_id == other.id

    login(client, "alice")
    listing = client.get("/payoutview/list/").get_data(as_text=True)
    assert f"/payoutview/show/{ours}" in listing and f"/payoutview/show/{theirs}" not in listing
    shown = client.get(f"/payoutview/show/{ours}").get_data(as_text=True)
    assert f"Order {settled['kept'].order_id}" in shown  # its statement
    assert client.get(f"/payoutview/show/{theirs}").status_code == 404
    items = client.get("/payoutitemview/list/").get_data(as_text=True)
    assert f"Payout {ours}" in items and f"Payout {theirs}" not in items
    foreign_item = db.session.get(Payout, theirs).items[0].id
    assert client.get(f"/payoutitemview/show/{foreign_item}").status_code == 404
    # Reading is all a partner may do, with its own payouts or anyone's.
    assert client.post(f"/payoutview/action/approve/{ours}").status_code == 403
    bulk = client.post("/payoutview/action_post", data={"action": "approve", "rowid": [theirs]})
    assert bulk.status_code == 403
    assert client.post(f"/payoutview/paid/{ours}", data={"bank_reference": "x"}).status_code == 403
    statuses = db.session.scalars(select(Payout.status)).all()
    assert statuses == [PayoutStatus.PENDING] * 2

    client.get("/logout/")
    login(client, "fiona")
    listing = client.get("/payoutview/list/").get_data(as_text=True)
    assert f"/payoutview/show/{ours}" in listing and f"/payoutview/show/{theirs}" in listing


def test_a_payout_overtaken_by_a_refund_is_refused_then_cancelled(client, settled):
    partner = settled["partner"]
    [payout_id] = create_payouts()
    refund(settled["kept"])  # after the payout was made: the partner now owes it back
    refund(settled["new"])
    assert ledger.partner_balance(db.session, partner, "BRL") == 0
    login(client, "fiona")
    refused = client.post(f"/payoutview/action/approve/{payout_id}", follow_redirects=True)
    assert "less than this payout" in refused.get_data(as_text=True)
    assert db.session.get(Payout, payout_id).status == PayoutStatus.PENDING

    cancelled = client.post(f"/payoutview/action/cancel_payout/{payout_id}", follow_redirects=True)
    assert "1 payout(s) cancelled." in cancelled.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Payout, payout_id) is None
    assert db.session.scalar(select(func.count()).select_from(PayoutItem)) == 0
    assert create_payouts() == []  # sales and refunds net to nothing: nothing to pay
    assert db.session.scalars(select(LedgerTransaction.kind)).all().count("payout") == 0


def test_unsettled_sales_never_cover_a_payout(client, settled):
    """A refund of the settled sale the pending payout pays leaves the partner owed only its
    unsettled sale: money the acquirer has not paid us yet. Finance is refused (before, the
    whole balance covered the payout and the platform paid out money it had not received)."""
    partner = settled["partner"]
    [payout_id] = create_payouts()
    fiona = db.session.scalars(select(PartnerUser).filter_by(username="fiona")).one()
    payouts.approve_payout(db.session, payout_id, fiona, utcnow())
    refund(settled["kept"])
    assert ledger.partner_balance(db.session, partner, "BRL") == settled["new"].net_cents == 17800
    funds = payouts.funds(db.session, partner.id, "BRL", utcnow())
    assert (funds.balance, funds.pending, funds.reserve, funds.available) == (17800, 17800, 0, 0)
    with pytest.raises(Conflict, match="less than this payout"):
        payouts.mark_payout_paid(db.session, payout_id, "TED 1", fiona, utcnow())
    db.session.rollback()
    assert db.session.get(Payout, payout_id).status == PayoutStatus.APPROVED
    assert db.session.scalars(select(LedgerTransaction.kind)).all().count("payout") == 0

    # Once that sale is settled, it pays the payout back: the payout is covered again.
    happened_days_ago()
    reconcile()
    assert payouts.funds(db.session, partner.id, "BRL", utcnow()).available == 0  # all in it
    payouts.mark_payout_paid(db.session, payout_id, "TED 1", fiona, utcnow())
    assert ledger.partner_balance(db.session, partner, "BRL") == 0


def test_the_reserve_holds_back_a_percent_of_the_recent_settled_net_for_30_days(settled):
    """10 % of the partner's settled net of the last 30 days stays unpaid: the kept sale (the
    refunded one nets to nothing); the unsettled sale is pending, held whole. The reserve is
    released 30 days after the sales it covers, in a payout of its own."""
    partner = settled["partner"]
    partner.set_reserve(Decimal("10"))
    db.session.commit()
    funds = payouts.funds(db.session, partner.id, "BRL", utcnow())
    assert (funds.balance, funds.pending, funds.reserve, funds.available) == (
        2 * 17800, 17800, 1780, 17800 - 1780,
    )  # fmt: skip

    [payout_id] = create_payouts()
    payout = db.session.get(Payout, payout_id)
    assert payout.amount_cents == 16020
    assert sum(item.amount_cents for item in payout.items) == 17800  # its statement, whole
    fiona = db.session.scalars(select(PartnerUser).filter_by(username="fiona")).one()
    payouts.approve_payout(db.session, payout_id, fiona, utcnow())
    payouts.mark_payout_paid(db.session, payout_id, "TED 1", fiona, utcnow())
    assert available(partner.id) == 0
    assert create_payouts() == []

    later = utcnow() + dt.timedelta(days=Partner.RESERVE_DAYS, minutes=1)
    assert available(partner.id, later) == 1780
    [released] = payouts.create_payouts(db.session, later)
    released = db.session.get(Payout, released)
    assert (released.amount_cents, released.items) == (1780, [])
    payouts.approve_payout(db.session, released.id, fiona, later)
    payouts.mark_payout_paid(db.session, released.id, "TED 2", fiona, later)
    # All that was settled is paid; the sale not settled yet is all the partner is owed.
    assert ledger.partner_balance(db.session, partner, "BRL") == settled["new"].net_cents


def test_a_raised_reserve_refuses_a_payout_it_no_longer_leaves_room_for(settled):
    partner = settled["partner"]
    [payout_id] = create_payouts()
    fiona = db.session.scalars(select(PartnerUser).filter_by(username="fiona")).one()
    payouts.approve_payout(db.session, payout_id, fiona, utcnow())
    partners.set_reserve(db.session, partner.id, Decimal("25.5"), fiona)
    with pytest.raises(Conflict, match="less than this payout"):
        payouts.mark_payout_paid(db.session, payout_id, "TED 1", fiona, utcnow())
    assert db.session.get(Payout, payout_id).status == PayoutStatus.APPROVED
    payouts.cancel_payout(db.session, payout_id, fiona)
    [again] = create_payouts()
    assert db.session.get(Payout, again).amount_cents == 17800 - 4539  # 25.5 % of 178.00


def test_finance_sets_a_partners_reserve_and_a_partner_cannot(client, settled):
    partner = settled["partner"]
    login(client, "fiona")
    form = client.get(f"/partnerview/reserve/{partner.id}")
    assert form.status_code == 200 and "Payout reserve (%)" in form.get_data(as_text=True)
    for bad, reason in (
        ("101", "between 0 and 100"), ("-1", "between 0 and 100"),
        ("NaN", "Give a number such as 7,5."), ("2,5555", "two decimal places"),
        ("2.555", '"2.555" is ambiguous'), ("", "Give the reserve"),
        ("abc", "Give a number such as 7,5."),
    ):  # fmt: skip
        refused = client.post(f"/partnerview/reserve/{partner.id}", data={"reserve_percent": bad})
        assert refused.status_code == 200, bad
        assert reason in refused.get_data(as_text=True), bad
    saved = client.post(f"/partnerview/reserve/{partner.id}", data={"reserve_percent": "12,5"})
    assert saved.status_code == 302
    db.session.expire_all()
    assert db.session.get(Partner, partner.id).reserve_percent == Decimal("12.50")
    # Finance sets the reserve only: the partner form, fees included, is the admins'.
    assert client.get(f"/partnerview/edit/{partner.id}").status_code == 403
    page = client.get("/balances/").get_data(as_text=True)
    assert "Available" in page and "Pending" in page and "Reserve" in page
    client.get("/logout/")

    login(client, "alice")
    assert client.post(
        f"/partnerview/reserve/{partner.id}", data={"reserve_percent": "0"}
    ).status_code == 403  # fmt: skip
    with pytest.raises(Forbidden):
        partners.set_reserve(db.session, partner.id, Decimal(0), PartnerActor(partner))
    db.session.expire_all()
    assert db.session.get(Partner, partner.id).reserve_percent == Decimal("12.50")


def test_an_admin_sets_the_reserve_in_the_partner_form(client, settled):
    partner = settled["partner"]
    make_user("root", "Admin")
    login(client, "root")
    form = {"name": partner.name, "fee_percent": "10", "fee_fixed_amount": "1,00"}
    refused = client.post(
        f"/partnerview/edit/{partner.id}", data={**form, "reserve_percent": "150"}
    )
    assert refused.status_code == 200 and "between 0 and 100" in refused.get_data(as_text=True)
    saved = client.post(f"/partnerview/edit/{partner.id}", data={**form, "reserve_percent": "5"})
    assert saved.status_code == 302
    db.session.expire_all()
    assert db.session.get(Partner, partner.id).reserve_percent == Decimal("5.00")
    assert available(partner.id) == 17800 - 890


def test_a_paid_payout_cannot_be_cancelled(client, settled):
    [payout_id] = create_payouts()
    login(client, "fiona")
    client.post(f"/payoutview/action/approve/{payout_id}")
    client.post(f"/payoutview/paid/{payout_id}", data={"bank_reference": "TED 9"})
    refused = client.post(f"/payoutview/action/cancel_payout/{payout_id}", follow_redirects=True)
    assert "is paid: it cannot be cancelled" in refused.get_data(as_text=True)
    assert db.session.get(Payout, payout_id).status == PayoutStatus.PAID


@pytest.mark.concurrency
def test_two_payouts_marked_paid_at_once_never_pay_more_than_is_owed(
    app, client, on_sale, monkeypatch
):
    """Two finance clerks mark two approved payouts paid at the same moment, when the partner is
    owed only one of them: one is paid, the other refused (each read the balance before the
    other posted, and both were paid)."""
    first = payment_of(buy(client, on_sale))
    reconcile(happened_days_ago(3))
    [a] = create_payouts()
    buy(client, on_sale)
    reconcile(happened_days_ago(1))
    [b] = create_payouts()
    fiona = make_user("fiona", "Finance")
    for payout_id in (a, b):
        payouts.approve_payout(db.session, payout_id, fiona, utcnow())
    refund(first)  # the partner is now owed only the second sale's share
    partner_id, fiona_id = on_sale.partner.id, fiona.id
    db.session.rollback()
    read_funds = payouts.funds

    def slow_funds(*args, **kwargs):
        value = read_funds(*args, **kwargs)
        time.sleep(0.5)  # the other clerk's click lands while this one decides
        return value

    monkeypatch.setattr(payouts, "funds", slow_funds)

    def mark_paid(payout_id: int) -> str:
        with app.app_context():
            session = Session(db.engine)
            try:
                actor = session.get(PartnerUser, fiona_id)
                payouts.mark_payout_paid(session, payout_id, f"TED {payout_id}", actor, utcnow())
                return "paid"
            except Conflict:
                return "refused"
            finally:
                session.close()

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(mark_paid, (a, b)))
    monkeypatch.undo()
    assert outcomes == ["paid", "refused"]
    db.session.expire_all()
    partner = db.session.get(Partner, partner_id)
    assert ledger.partner_balance(db.session, partner, "BRL") >= 0


@pytest.mark.parametrize("with_items", [True, False], ids=["new sales", "reserve released"])
@pytest.mark.concurrency
def test_two_payout_runs_at_once_create_one_payout(app, settled, monkeypatch, with_items):
    """The beat task and a retry run at the same moment, each reading the partner's funds before
    the other wrote its payout: the partner's row lock makes the second read them again and find
    nothing more to pay (a released reserve lists no transaction a unique item could catch)."""
    partner_id = settled["partner"].id
    now = utcnow()
    if not with_items:
        settled["partner"].set_reserve(Decimal("10"))
        db.session.commit()
        fiona = db.session.scalars(select(PartnerUser).filter_by(username="fiona")).one()
        [first] = create_payouts()
        payouts.approve_payout(db.session, first, fiona, now)
        payouts.mark_payout_paid(db.session, first, "TED 1", fiona, now)
        now += dt.timedelta(days=Partner.RESERVE_DAYS, minutes=1)
    expected = available(partner_id, now)
    assert expected == (17800 if with_items else 1780)
    db.session.rollback()
    read_funds = payouts.partner_funds

    def slow_funds(*args, **kwargs):
        value = read_funds(*args, **kwargs)
        time.sleep(0.5)  # the other run reads the same funds meanwhile
        return value

    monkeypatch.setattr(payouts, "partner_funds", slow_funds)

    def run(_: int) -> list[int]:
        with app.app_context():
            session = Session(db.engine)
            try:
                return payouts.create_payouts(session, now)
            finally:
                session.close()

    with ThreadPoolExecutor(2) as pool:
        created = [p for ids in pool.map(run, range(2)) for p in ids]
    monkeypatch.undo()
    assert len(created) == 1
    assert db.session.get(Payout, created[0]).amount_cents == expected
    assert available(partner_id, now) == 0


def test_payout_statements_and_orders_export_with_their_relations(client, settled):
    """The payout statement's export answered 500 (a view without a default order), and the
    exports read relations (an order's event) after the request could load them (a review)."""
    [payout_id] = create_payouts()
    login(client, "fiona")
    statement = client.get("/payoutitemview/export.csv")
    assert statement.status_code == 200
    rows = list(csv.reader(io.StringIO(statement.get_data(as_text=True))))
    assert rows[0] == ["Payout", "Posted", "Kind", "Transaction", "Partner's share"]
    items = db.session.scalars(select(PayoutItem).where(PayoutItem.payout_id == payout_id)).all()
    assert len(rows) == 1 + len(items) > 1
    orders = client.get("/orderview/export.csv").get_data(as_text=True)
    assert orders.count("\n") == 4  # the header and the three orders
    assert settled["partner"].events[0].name in orders
