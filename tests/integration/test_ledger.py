"""Every sale, and every charge of a lost hold, is in the double-entry ledger, exactly once."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.extensions import db
from app.models import LedgerAccount, LedgerEntry, LedgerError, LedgerTransaction, Payment
from app.models.base import utcnow
from app.services import ledger, payments
from tests.support.money import transaction_sums
from tests.support.shop import buy, card_token, hold_seats, pay, sign_up


def test_a_sale_posts_gross_fee_and_partner_payable(client, on_sale):
    buy(client, on_sale)
    payment = db.session.scalars(select(Payment)).one()
    transaction = db.session.scalars(select(LedgerTransaction)).one()
    assert transaction.kind == "capture" and transaction.payment_id == payment.id
    lines = {e.account.code: e.amount_cents for e in transaction.entries}
    partner_code = f"partner_payable:{on_sale.partner_id}"
    assert lines == {
        ledger.CLEARING: 20000,
        ledger.FEE_REVENUE: -2200,
        partner_code: -17800,
    }
    assert transaction_sums() == {0}
    partner = on_sale.partner
    assert ledger.partner_balance(db.session, partner, "BRL") == payment.net_cents == 17800


def test_posting_the_same_cause_twice_posts_once(client, on_sale):
    buy(client, on_sale)
    payment = db.session.scalars(select(Payment)).one()
    again = ledger.post_sale(db.session, ledger.Sale.of(payment))
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == 1
    assert db.session.get(LedgerTransaction, again).cause_key == f"capture:payment:{payment.id}"


def test_a_lost_hold_charge_goes_through_refunds_payable_and_back(client, on_sale, monkeypatch):
    from app.services.purchase.release import release_expired_holds

    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale, count=1)
    real_charge = payments.SimulatedGateway.charge

    def charge_while_the_hold_expires(self, token, amount, currency, key):
        from app.models import Hold

        row = db.session.get(Hold, hold["id"])
        row.created_at = utcnow() - dt.timedelta(minutes=30)
        row.expires_at = utcnow() - dt.timedelta(seconds=1)
        db.session.commit()
        release_expired_holds(db.session)
        return real_charge(self, token, amount, currency, key)

    monkeypatch.setattr(payments.SimulatedGateway, "charge", charge_while_the_hold_expires)
    assert pay(client, headers, hold["id"], card_token(client)).status_code == 409
    kinds = sorted(t.kind for t in db.session.scalars(select(LedgerTransaction)))
    assert kinds == ["capture", "refund"]
    assert ledger.balance(db.session, ledger.account(db.session, ledger.CLEARING), "BRL") == 0
    assert (
        ledger.balance(db.session, ledger.account(db.session, ledger.REFUNDS_PAYABLE), "BRL") == 0
    )
    assert ledger.partner_balance(db.session, on_sale.partner, "BRL") == 0
    assert transaction_sums() == {0}


def test_the_ledger_is_append_only(client, on_sale):
    buy(client, on_sale)
    entry = db.session.scalars(select(LedgerEntry)).first()
    entry.amount_cents += 1
    with pytest.raises(LedgerError):
        db.session.flush()
    db.session.rollback()
    db.session.delete(db.session.scalars(select(LedgerTransaction)).first())
    with pytest.raises(LedgerError):
        db.session.flush()
    db.session.rollback()


def test_the_database_refuses_an_unbalanced_transaction_at_commit(client, on_sale):
    clearing = ledger.account(db.session, ledger.CLEARING)
    bank = ledger.account(db.session, ledger.BANK)
    db.session.commit()
    tx = db.session.execute(
        text("INSERT INTO ledger_transaction (kind, cause_key, created_at) "
             "VALUES ('settlement', 'raw:1', now()) RETURNING id")
    ).scalar()  # fmt: skip
    for account_id, amount in ((clearing.id, -1000), (bank.id, 999)):
        db.session.execute(
            text("INSERT INTO ledger_entry (transaction_id, account_id, amount_cents, currency) "
                 "VALUES (:tx, :account, :amount, 'BRL')"),
            {"tx": tx, "account": account_id, "amount": amount},
        )  # fmt: skip
    with pytest.raises(DBAPIError, match="does not balance"):
        db.session.commit()
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == 0


def test_an_account_created_in_a_rolled_back_transaction_is_not_remembered(client, on_sale):
    """Account ids are cached per process, but only once their creation committed: a sale that
    rolls back after creating an account must not leave later sales pointing at a missing row."""
    ledger.account_id(db.session, ledger.CLEARING)
    db.session.rollback()
    bank = ledger.account_id(db.session, ledger.BANK)  # may take the rolled-back id
    db.session.commit()
    clearing = ledger.account_id(db.session, ledger.CLEARING)
    db.session.commit()
    assert clearing != bank
    assert db.session.get(LedgerAccount, clearing).code == ledger.CLEARING
    assert ledger.account_id(db.session, ledger.CLEARING) == clearing  # cached, same row


def test_a_busy_days_settlement_beyond_two_billion_cents_posts_exactly(client, on_sale):
    from app.models import TransactionKind

    big = 3_000_000_000  # R$30 M: more than a 32-bit column holds
    clearing = ledger.account_id(db.session, ledger.CLEARING)
    bank = ledger.account_id(db.session, ledger.BANK)
    ledger.post(
        db.session,
        TransactionKind.SETTLEMENT,
        "settlement:test:big",
        [(bank, big, "BRL"), (clearing, -big, "BRL")],
    )
    db.session.commit()
    assert ledger.balance(db.session, bank, "BRL") == big
    assert ledger.balance(db.session, clearing, "BRL") == -big
    # Sums come back as integers (PostgreSQL sums BIGINT into NUMERIC): pages format them.
    assert type(ledger.balance(db.session, bank, "BRL")) is int
    statement_balances = [s["balance"] for s in ledger.partner_statements(db.session)]
    assert all(type(b) is int for b in statement_balances)
