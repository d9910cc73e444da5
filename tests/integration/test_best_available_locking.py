"""Best-available locks only the spots it may take: one seat, or general-admission places, are
the first free ones, so a concurrent buyer skips nothing more than those and holds the next at
its first look, instead of finding every free spot locked and looking again (a flash crowd's
last places, bench/onsale.py --burst). Real connections from two threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import current_app

from app.extensions import db
from app.models import EventSection, EventSpot
from app.services import customers
from app.services import events as event_service
from app.services.purchase import hold
from app.services.scoping import SYSTEM
from tests.support.builders import make_event, make_partner


def customer(email: str) -> int:
    sm = current_app.appbuilder.sm
    return customers.sign_up(db.session, sm, "Ana Souza", email, "Ingresso-Azul-77").id


def general_event(places: int) -> tuple[int, int]:
    event = make_event(make_partner("Aurora"), sections=0)
    event.sections.append(EventSection(name="Pista", kind="general", price_cents=10000))
    db.session.commit()
    event_service.generate_spots(db.session, event.sections[0].id, SYSTEM, quantity=places)
    event.publish()
    db.session.commit()
    return event.id, event.sections[0].id


def seated_event() -> tuple[int, int]:
    event = make_event(make_partner("Aurora"), rows=("A", "A"), seats=2)
    event.publish()
    db.session.commit()
    return event.id, event.sections[0].id


@pytest.mark.concurrency
@pytest.mark.parametrize(
    ("kind", "quantity"), [("general", 1), ("general", 2), ("seated", 1)], ids=str
)
def test_a_buyer_holds_the_next_free_spot_while_another_is_choosing(
    app, monkeypatch, kind, quantity
):
    event_id, section_id = general_event(2 * quantity) if kind == "general" else seated_event()
    ana, bia = customer("ana@example.com"), customer("bia@example.com")
    choosing, chosen = threading.Event(), threading.Event()
    first = threading.current_thread()
    best_block, lock_spots = hold.best_block, hold._lock_spots
    looks: list[bool] = []

    def slow_choice(candidates: Any, wanted: int) -> list[Any]:
        if threading.current_thread() is not first:  # Ana: her spots stay locked meanwhile
            choosing.set()
            assert chosen.wait(10)
        return best_block(candidates, wanted)

    def counted_look(*args: Any) -> Any:
        spots = lock_spots(*args)
        if threading.current_thread() is first:
            looks.append(spots is not None)
            chosen.set()  # a second look would wait for Ana's commit: let her go on
        return spots

    monkeypatch.setattr(hold, "best_block", slow_choice)
    monkeypatch.setattr(hold, "_lock_spots", counted_look)

    def ana_holds() -> hold.HoldSummary:
        with app.app_context():
            try:
                return hold.reserve_spots(
                    db.session, ana, event_id, section_id=section_id, quantity=quantity
                )
            finally:
                db.session.remove()

    with ThreadPoolExecutor(1) as pool:
        anas = pool.submit(ana_holds)
        assert choosing.wait(10)
        bias = hold.reserve_spots(
            db.session, bia, event_id, section_id=section_id, quantity=quantity
        )
        anas = anas.result(10)
    assert looks == [True]  # Bia held at her first look, while Ana was still choosing
    spots = db.session.query(EventSpot).filter(EventSpot.section_id == section_id).all()
    held = {spot.hold_id for spot in spots}
    assert held == {anas.id, bias.id}
    assert [spot.status for spot in spots] == ["held"] * len(spots)
    assert len(anas.spots) == len(bias.spots) == quantity
