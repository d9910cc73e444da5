"""Spot state changes lock their rows: concurrent changes never overwrite each other.

Real connections from several threads.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import Conflict, EventSpot, SpotStatus
from app.services import events as event_service
from app.services.scoping import get_owned_many
from tests.support.builders import PartnerActor, make_event, make_partner


@pytest.mark.concurrency
def test_a_change_waits_for_the_lock_and_then_sees_the_committed_state():
    partner = make_partner("Lockers")
    spot_id = make_event(partner).sections[0].spots[0].id
    actor = PartnerActor(partner)
    engine = db.engine  # threads have no app context
    locked, release = threading.Event(), threading.Event()

    def first() -> None:
        with Session(engine) as session:
            spot = get_owned_many(session, EventSpot, [spot_id], actor, lock=True)[0]
            locked.set()
            release.wait(5)
            spot.block()
            session.commit()

    def second() -> str:
        locked.wait(5)
        with Session(engine) as session:
            try:
                event_service.set_spots_blocked(session, [spot_id], actor, blocked=True)
                return "blocked"
            except Conflict as err:
                return err.message

    with ThreadPoolExecutor(2) as pool:
        first_done = pool.submit(first)
        second_done = pool.submit(second)
        locked.wait(5)
        release.set()
        first_done.result(10)
        outcome = second_done.result(10)
    assert outcome == "Spot A-1 is already blocked."


@pytest.mark.concurrency
def test_many_concurrent_blockers_one_wins():
    partner = make_partner("Racers")
    spot_id = make_event(partner).sections[0].spots[0].id
    actor = PartnerActor(partner)
    engine = db.engine  # threads have no app context
    start = threading.Barrier(16)

    def attempt(_: int) -> bool:
        start.wait(5)
        with Session(engine) as session:
            try:
                event_service.set_spots_blocked(session, [spot_id], actor, blocked=True)
                return True
            except Conflict:
                return False

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(attempt, range(16)))
    assert results.count(True) == 1
    db.session.expire_all()
    assert db.session.get(EventSpot, spot_id).status == SpotStatus.BLOCKED
