"""Finance and admins run the settlement of a day and the payout run now, from the dashboard
(after a confirmation page) or with `flask money`: the same functions the scheduled tasks call,
idempotent as they are; a day not over yet is refused; partners may not."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import LedgerTransaction, Payout, Settlement, SettlementDay
from app.models.base import utcnow
from app.models.ledger import TransactionKind
from tests.support.builders import login, make_user
from tests.support.money import happened_days_ago
from tests.support.shop import buy

pytestmark = pytest.mark.usefixtures("acquirer_fees")


def _count(model: type, *where: object) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _settlement_postings() -> int:
    return _count(LedgerTransaction, LedgerTransaction.kind == TransactionKind.SETTLEMENT)


@pytest.fixture
def sold_yesterday(client, on_sale) -> dt.date:
    """Two orders of Aurora's concert, captured yesterday (UTC); returns that day."""
    buy(client, on_sale)
    buy(client, on_sale)
    return happened_days_ago()


def test_finance_settles_a_past_day_after_confirming_and_a_second_run_posts_nothing(
    client, sold_yesterday
):
    make_user("fiona", "Finance")
    login(client, "fiona")
    day = sold_yesterday.isoformat()

    confirm = client.get(f"/moneyruns/settle?day={day}")
    assert confirm.status_code == 200
    page = confirm.get_data(as_text=True)
    assert f"Reconcile the acquirer's report of {day}" in page
    assert "2 payment(s) captured, R$400.00" in page
    assert _count(SettlementDay) == 0  # the confirmation page changes nothing

    first = client.post("/moneyruns/settle", data={"day": day}, follow_redirects=True)
    assert first.status_code == 200
    assert f"{day}: 1 settlements, 2 lines" in first.get_data(as_text=True)
    assert _settlement_postings() == 1
    assert _count(Settlement, Settlement.day == sold_yesterday) == 1

    again = client.post("/moneyruns/settle", data={"day": day}, follow_redirects=True)
    assert f"{day}: reconciled before, nothing new to post." in again.get_data(as_text=True)
    assert _settlement_postings() == 1
    reviewed = client.get(f"/moneyruns/settle?day={day}").get_data(as_text=True)
    assert f"This day was reconciled at {utcnow().date().isoformat()}" in reviewed


def test_finance_runs_the_payouts_now_and_a_second_run_makes_none(client, sold_yesterday):
    make_user("fiona", "Finance")
    login(client, "fiona")
    client.post("/moneyruns/settle", data={"day": sold_yesterday.isoformat()})

    preview = client.get("/moneyruns/payouts").get_data(as_text=True)
    assert "Aurora: R$" in preview and "Run payouts" in preview
    assert _count(Payout) == 0

    made = client.post("/moneyruns/payouts", follow_redirects=True).get_data(as_text=True)
    assert "1 payout(s) made, pending approval: #" in made
    assert _count(Payout) == 1
    again = client.post("/moneyruns/payouts", follow_redirects=True).get_data(as_text=True)
    assert "No payout made" in again
    assert _count(Payout) == 1
    assert "the run would make none" in client.get("/moneyruns/payouts").get_data(as_text=True)


def test_an_admin_may_run_them_too(client, sold_yesterday):
    make_user("root", "Admin")
    login(client, "root")
    assert client.get("/moneyruns/").status_code == 200
    response = client.post("/moneyruns/settle", data={"day": sold_yesterday.isoformat()})
    assert response.status_code == 302
    assert _settlement_postings() == 1


def test_a_day_not_over_yet_is_refused_with_a_clear_message(client, on_sale):
    buy(client, on_sale)
    make_user("fiona", "Finance")
    login(client, "fiona")
    today = utcnow().date().isoformat()
    for response in (
        client.get(f"/moneyruns/settle?day={today}"),
        client.post("/moneyruns/settle", data={"day": today}),
        client.post("/moneyruns/settle", data={"day": "2999-01-01"}),
    ):
        assert response.status_code == 409
        assert "is not over yet (UTC): its report is reconciled from tomorrow." in (
            response.get_data(as_text=True)
        )
    assert _count(SettlementDay) == 0


@pytest.mark.parametrize("day", ["", "yesterday", "2026-13-01", "2026-1-1", "x" * 500])
def test_a_day_that_is_not_a_date_is_a_400_naming_the_field(client, day):
    make_user("fiona", "Finance")
    login(client, "fiona")
    for response in (
        client.get("/moneyruns/settle", query_string={"day": day}),
        client.post("/moneyruns/settle", data={"day": day}),
    ):
        assert response.status_code == 400
        page = response.get_data(as_text=True)
        assert 'id="day-error"' in page and "Give the day as YYYY-MM-DD" in page


def test_a_partner_may_not_run_settlement_or_payouts(client, sold_yesterday, on_sale):
    make_user("alice", "Partner", on_sale.partner)
    login(client, "alice")
    day = sold_yesterday.isoformat()
    assert client.get("/moneyruns/").status_code == 403
    assert client.get(f"/moneyruns/settle?day={day}").status_code == 403
    assert client.post("/moneyruns/settle", data={"day": day}).status_code == 403
    assert client.get("/moneyruns/payouts").status_code == 403
    assert client.post("/moneyruns/payouts").status_code == 403
    assert _count(SettlementDay) == 0 and _count(Payout) == 0
    assert "Money runs" not in client.get("/dashboard/").get_data(as_text=True)


def test_flask_money_settles_a_day_and_runs_payouts_once(app, sold_yesterday):
    runner = app.test_cli_runner()
    day = sold_yesterday.isoformat()

    settled = runner.invoke(args=["money", "settle", "--day", day])
    assert settled.exit_code == 0, settled.output
    assert f"{day}: 1 settlements, 2 lines" in settled.output
    again = runner.invoke(args=["money", "settle", "--day", day])
    assert f"{day}: reconciled before, nothing new to post." in again.output
    assert _settlement_postings() == 1

    paid = runner.invoke(args=["money", "payouts"])
    assert paid.exit_code == 0 and "1 payout(s) made" in paid.output
    assert "No payout made" in runner.invoke(args=["money", "payouts"]).output
    assert _count(Payout) == 1


def test_flask_money_settle_refuses_a_day_not_over_and_settles_every_due_day_without_one(
    app, sold_yesterday
):
    runner = app.test_cli_runner()
    today = utcnow().date().isoformat()
    refused = runner.invoke(args=["money", "settle", "--day", today])
    assert refused.exit_code == 1
    assert f"{today} is not over yet (UTC)" in refused.output
    assert _count(SettlementDay) == 0

    due = runner.invoke(args=["money", "settle"])
    assert due.exit_code == 0, due.output
    # The day before the first capture is due too (the acquirer's clock may run ahead).
    assert f"{sold_yesterday.isoformat()}: 1 settlements" in due.output
    assert "No day to reconcile." in runner.invoke(args=["money", "settle"]).output
