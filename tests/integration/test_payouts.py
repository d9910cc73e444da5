"""Payouts pay a partner its settled balance once: finance approves and marks them paid with the
bank reference, which posts partner payable -> bank; a partner reads only its own."""

from __future__ import annotations

import csv
import io
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import (
    Conflict,
    LedgerTransaction,
    Partner,
    PartnerUser,
    Payout,
    PayoutItem,
    PayoutStatus,
)
from app.models.base import utcnow
from app.services import ledger, payouts
from tests.support.builders import login, make_event, make_partner, make_user
from tests.support.money import balance, create_payouts, happened_days_ago, reconcile, refund
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
    assert payouts.settled_balance(db.session, partner.id, "BRL") == 17800

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
    assert payouts.settled_balance(db.session, partner.id, "BRL") == 0

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


def test_a_paid_payout_cannot_be_cancelled(client, settled):
    [payout_id] = create_payouts()
    login(client, "fiona")
    client.post(f"/payoutview/action/approve/{payout_id}")
    client.post(f"/payoutview/paid/{payout_id}", data={"bank_reference": "TED 9"})
    refused = client.post(f"/payoutview/action/cancel_payout/{payout_id}", follow_redirects=True)
    assert "is paid: it cannot be cancelled" in refused.get_data(as_text=True)
    assert db.session.get(Payout, payout_id).status == PayoutStatus.PAID


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
    read_balance = ledger.partner_balance

    def slow_balance(*args, **kwargs):
        value = read_balance(*args, **kwargs)
        time.sleep(0.5)  # the other clerk's click lands while this one decides
        return value

    monkeypatch.setattr(ledger, "partner_balance", slow_balance)

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
