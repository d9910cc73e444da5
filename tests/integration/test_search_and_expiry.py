"""Catalogue search uses PostgreSQL's full-text index; the beat task frees expired holds."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, text

from app.extensions import db
from app.models import Event, EventSpot, Hold, HoldStatus, SpotStatus
from app.models.base import utcnow
from app.services import catalog, customers, purchase
from app.tasks import celery
from tests.support.builders import make_event, make_partner
from tests.support.database import explain


def test_text_search_is_served_by_the_gin_index():
    event = make_event(make_partner("Aurora"), "Samba de Roda", description="Pandeiro e viola")
    event.publish()
    db.session.commit()
    assert catalog.search_events(db.session, catalog.Search(text="pandeiro")).total == 1
    assert catalog.search_events(db.session, catalog.Search(text="tango")).total == 0
    # A handful of rows: a sequential scan is cheaper, unless it is off. (With thousands of
    # events the planner picks the index for the whole search: test_accent_blind_search.py.)
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = explain(select(Event.id).where(catalog.text_match("samba")))
    assert "ix_event_search" in plan, plan
    db.session.rollback()


def test_the_beat_task_releases_expired_holds(app):
    event = make_event(make_partner("Aurora"))
    event.publish()
    db.session.commit()
    customer = customers.sign_up(
        db.session, app.appbuilder.sm, "Ana", "ana@example.com", "Ingresso-Azul-77"
    )
    spot_id = event.sections[0].spots[0].id
    hold = purchase.hold.reserve_spots(db.session, customer.id, event.id, spot_ids=[spot_id])
    other = customers.sign_up(
        db.session, app.appbuilder.sm, "Bia", "bia@example.com", "Ingresso-Azul-77"
    )
    fresh = purchase.hold.reserve_spots(
        db.session, other.id, event.id, spot_ids=[event.sections[0].spots[1].id]
    )
    stale = db.session.get(Hold, hold.id)
    stale.created_at = utcnow() - dt.timedelta(minutes=20)
    stale.expires_at = utcnow() - dt.timedelta(minutes=1)
    db.session.commit()
    assert "release-expired-holds" in celery.conf.beat_schedule
    released = celery.tasks["holds.release_expired"].apply().get()  # run here, as a worker would
    assert released == 1
    db.session.expire_all()
    assert db.session.get(Hold, hold.id).status == HoldStatus.EXPIRED
    assert db.session.get(EventSpot, spot_id).status == SpotStatus.AVAILABLE
    assert db.session.get(Hold, fresh.id).status == HoldStatus.ACTIVE
    still_held = db.session.scalars(select(EventSpot).where(EventSpot.hold_id == fresh.id)).all()
    assert len(still_held) == 1 and still_held[0].status == SpotStatus.HELD
