"""`flask demo load` gives a working demo, with a week of past sales, and is idempotent."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from app import sim_acquirer
from app.extensions import db
from app.models import (
    CheckinEntry,
    Customer,
    Event,
    EventSection,
    EventSpot,
    EventStatus,
    Order,
    OrderStatus,
    Partner,
    Payment,
    Payout,
    Settlement,
    SettlementDay,
    SettlementMismatch,
    Ticket,
)
from app.models.base import utcnow
from app.services import catalog, demo_history
from app.services.demo import DEMO_PASSWORD
from tests.support.builders import login
from tests.support.money import transaction_sums


def _counts() -> tuple[int, int, int, int]:
    return (
        db.session.scalar(select(func.count()).select_from(Partner)),
        db.session.scalar(select(func.count()).select_from(Event)),
        db.session.scalar(select(func.count()).select_from(EventSpot)),
        # Customers who log in (the demo's past buyers have no login).
        db.session.scalar(select(func.count()).where(Customer.user_id.is_not(None))),
    )


def test_demo_load_creates_every_role_and_a_realistic_catalogue(app, client):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    assert "partner1" in result.output and DEMO_PASSWORD in result.output
    first = _counts()
    assert first[0] == 2 and first[3] == 2

    sm = app.appbuilder.sm
    for username, role in [
        ("admin", "Admin"),
        ("partner1", "Partner"),
        ("partner2", "Partner"),
        ("finance", "Finance"),
        ("gate1", "Gate"),
        ("customer1", "Customer"),
        ("customer2", "Customer"),
    ]:
        user = sm.find_user(username=username)
        assert [r.name for r in user.roles] == [role]
    partner1, partner2, gate1 = (
        sm.find_user(username=u) for u in ("partner1", "partner2", "gate1")
    )
    assert (
        partner1.partner_id and partner2.partner_id and partner1.partner_id != partner2.partner_id
    )
    assert gate1.partner_id == partner1.partner_id

    published = db.session.scalars(select(Event).where(Event.status == EventStatus.PUBLISHED)).all()
    assert {e.partner_id for e in published} == {partner1.partner_id, partner2.partner_id}
    assert len({e.city for e in published}) >= 4
    assert db.session.scalar(select(func.count()).where(Event.status == EventStatus.DRAFT)) >= 1
    kinds = set(db.session.scalars(select(EventSection.kind)))
    assert kinds == {"seated", "general"}
    biggest = db.session.execute(
        select(EventSpot.event_id, func.count())
        .group_by(EventSpot.event_id)
        .order_by(func.count().desc())
    ).first()
    assert biggest[1] >= 20_000
    # The big on-sale has a waiting room; the others sell at will.
    rates = {e.id: e.waiting_room_per_minute for e in published}
    assert rates.pop(biggest[0]) == 600 and set(rates.values()) == {None}

    # Its names are spelled as in Brazil, and found as Brazilians type them.
    assert {"São Paulo", "Rio de Janeiro", "Belo Horizonte"} <= {e.city for e in published}
    gala = db.session.scalar(select(Event).where(Event.name.startswith("Orquestra")))
    assert gala.name == "Orquestra Sinfônica: Noite de Gala" and gala.city == "São Paulo"
    assert {s.name for s in gala.sections} == {"Plateia", "Balcão"}
    assert db.session.scalar(select(Partner.name).where(Partner.id == gala.partner_id)) == (
        "Aurora Produções"
    )
    found = catalog.search_events(db.session, catalog.Search(text="orquestra sinfonica"))
    assert [e.id for e in found.events] == [gala.id]
    assert catalog.facets(db.session)["cities"].count("São Paulo") == 1

    # A demo loaded before its names had accents is the same demo, spelled anew.
    db.session.execute(text("UPDATE partner SET name = unaccent(name)"))
    db.session.execute(text("UPDATE event SET name = unaccent(name), city = upper(unaccent(city))"))
    db.session.execute(text("UPDATE event_section SET name = unaccent(name)"))
    db.session.commit()
    db.session.expire_all()  # as a new process would read them
    again = runner.invoke(args=["demo", "load"])
    assert again.exit_code == 0, again.output
    assert _counts() == first
    db.session.expire_all()
    assert (gala.name, gala.city) == ("Orquestra Sinfônica: Noite de Gala", "São Paulo")
    assert {s.name for s in gala.sections} == {"Plateia", "Balcão"}
    assert "Aurora Produções" in set(db.session.scalars(select(Partner.name)))
    # The banner's promo code, once however often the demo loads, on Aurora's events.
    from app.models.promo import PromoCode

    [code] = db.session.scalars(select(PromoCode)).all()
    assert (code.code, code.partner_id, code.value) == ("BEMVINDO10", partner1.partner_id, 10)
    assert "BEMVINDO10" in result.output

    login(client, "partner1", DEMO_PASSWORD)
    page = client.get("/eventview/list/").get_data(as_text=True)
    assert "Final do Campeonato" in page and "Bossa Nova" not in page

    # The demo gate can scan today: gate1 works Aurora's published events, one of them open now.
    from app.services import checkin

    scanner = checkin.staff_scanner(db.session, gate1.id)
    aurora = {e.id for e in published if e.partner_id == partner1.partner_id}
    assert scanner.event_ids == aurora
    now = utcnow()
    assert any(
        e.checkin_window()[0] <= now <= e.checkin_window()[1] for e in published if e.id in aurora
    )


def test_demo_load_if_empty_leaves_an_existing_catalogue_alone(app, two_partners):
    result = app.test_cli_runner().invoke(args=["demo", "load", "--if-empty"])
    assert result.exit_code == 0
    assert "already has events" in result.output
    assert db.session.scalar(select(func.count()).select_from(Partner)) == 2


@pytest.fixture
def without_redis(app):
    """As `make run` runs: no Redis (check-in on the database store)."""
    saved = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = None
    yield
    app.config["REDIS_URL"] = saved


def test_the_demo_has_a_week_of_past_sales_that_settle_without_mismatch_and_pay_out(
    app, without_redis
):
    runner = app.test_cli_runner()
    loaded = runner.invoke(args=["demo", "load"])
    assert loaded.exit_code == 0, loaded.output
    now = utcnow()
    today = now.date()
    paid = db.session.execute(
        select(
            Order.id, Order.paid_at, Payment.captured_at, Payment.amount_cents, Order.total_cents
        )
        .join(Payment, Payment.order_id == Order.id)
        .where(Order.status == OrderStatus.PAID)
    ).all()
    days = {row.paid_at.date() for row in paid}
    assert len([d for d in days if d < today]) == demo_history.DAYS and max(days) <= today
    assert all(row.paid_at == row.captured_at <= now for row in paid)
    assert all(row.amount_cents == row.total_cents for row in paid)
    assert f"{len(paid)} past orders created" in loaded.output
    # The acquirer's report of a past day has the charges of that day, as ours do.
    day = min(days)
    report = sim_acquirer.settlement_report(day)
    ours = [row.amount_cents for row in paid if row.paid_at.date() == day]
    assert report["totals"]["BRL"]["charges_cents"] == sum(ours)
    assert len(report["lines"]) == len(ours)

    settled = runner.invoke(args=["money", "settle"])
    assert settled.exit_code == 0, settled.output
    assert db.session.scalar(select(func.count()).select_from(SettlementMismatch)) == 0
    reconciled = set(db.session.scalars(select(SettlementDay.day)))
    assert {d for d in days if d < today} <= reconciled and today not in reconciled
    assert db.session.scalar(select(func.sum(Settlement.captured_cents))) == sum(
        row.amount_cents for row in paid if row.paid_at.date() < today
    )
    assert runner.invoke(args=["money", "payouts"]).exit_code == 0
    paid_out = set(db.session.scalars(select(Payout.partner_id)))
    assert paid_out == set(db.session.scalars(select(Partner.id)))
    assert transaction_sums() == {0}

    # The gala's doors are open: some of its tickets were scanned in, not all.
    gala = db.session.scalar(select(Event).where(Event.checkin_opens_at.is_not(None)))
    sold = db.session.scalar(
        select(func.count()).where(Ticket.event_id == gala.id, Ticket.status == "valid")
    )
    entered = db.session.scalar(select(func.count()).where(CheckinEntry.event_id == gala.id))
    assert 0 < entered < sold

    again = runner.invoke(args=["demo", "load"])
    assert again.exit_code == 0 and "0 past orders created" in again.output
    assert db.session.scalar(select(func.count()).select_from(Order)) == len(paid)
