"""`flask demo load` gives a working demo and is idempotent."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import Customer, Event, EventSection, EventSpot, EventStatus, Partner
from app.models.base import utcnow
from app.services.demo import DEMO_PASSWORD
from tests.support.builders import login


def _counts() -> tuple[int, int, int, int]:
    return (
        db.session.scalar(select(func.count()).select_from(Partner)),
        db.session.scalar(select(func.count()).select_from(Event)),
        db.session.scalar(select(func.count()).select_from(EventSpot)),
        db.session.scalar(select(func.count()).select_from(Customer)),
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

    again = runner.invoke(args=["demo", "load"])
    assert again.exit_code == 0, again.output
    assert _counts() == first

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
