"""A payout's amount and its statement (the transactions it pays) are read from one snapshot of
the ledger: a day settled by another process between the two reads must not put on the
statement a transaction whose money the payout does not pay."""

from __future__ import annotations

import threading

import pytest
from flask import Flask

from app.extensions import db
from app.models import Payout
from app.services import payouts
from tests.support.money import available, create_payouts, happened_days_ago, reconcile
from tests.support.shop import buy

pytestmark = pytest.mark.usefixtures("acquirer_fees")


def test_a_day_settled_while_a_payout_is_made_is_in_both_its_amount_and_statement_or_neither(
    app: Flask, client, on_sale, monkeypatch
):
    buy(client, on_sale)
    reconcile(happened_days_ago(2))  # settled: the payout's money
    buy(client, on_sale)
    yesterday = happened_days_ago(1)  # over, not settled yet
    partner_id = on_sale.partner_id
    db.session.commit()
    read_funds = payouts.funds

    def funds_then_a_settlement(*args, **kwargs):
        found = read_funds(*args, **kwargs)

        def settle() -> None:  # another worker settles yesterday meanwhile
            with app.app_context():
                reconcile(yesterday)
                db.session.remove()

        other = threading.Thread(target=settle)
        other.start()
        other.join()
        return found

    monkeypatch.setattr(payouts, "funds", funds_then_a_settlement)
    [payout_id] = create_payouts()
    monkeypatch.undo()

    payout = db.session.get(Payout, payout_id)
    statement = sum(item.amount_cents for item in payout.items)
    assert statement == payout.amount_cents  # it pays what its statement lists
    # The day settled meanwhile is paid by the next payout.
    assert available(partner_id) == 17800 * 2 - payout.amount_cents
