"""What a partner does in the dashboard, and the rules that refuse what it must not do."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from app.extensions import db
from app.models import (
    Event,
    EventSection,
    EventSpot,
    EventStatus,
    SpotStatus,
)
from app.models.base import utcnow
from tests.support.builders import login, make_event, make_partner, make_user, record_sale


@pytest.fixture
def alice(client):
    partner = make_partner("Aurora")
    make_user("alice", "Partner", partner)
    login(client, "alice")
    return {"client": client, "partner": partner}


def _event_form(**overrides):
    starts = (utcnow() + dt.timedelta(days=10)).replace(microsecond=0)
    form = {
        "name": "Samba Night",
        "description": "Live samba",
        "venue": "Circo Voador",
        "city": "Rio de Janeiro",
        "address": "Rua dos Arcos",
        "category": "music",
        "starts_at": starts.strftime("%Y-%m-%d %H:%M:%S"),
        "ends_at": (starts + dt.timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S"),
        "sales_start": "",
        "sales_end": "",
        "image_url": "https://example.com/samba.jpg",
        "currency": "BRL",
    }
    form.update(overrides)
    return form


def test_a_partner_creates_an_event_for_its_own_partner(alice):
    response = alice["client"].post("/eventview/add", data=_event_form())
    assert response.status_code == 302
    event = db.session.query(Event).filter_by(name="Samba Night").one()
    assert event.partner_id == alice["partner"].id
    assert event.status == EventStatus.DRAFT
    assert event.currency == "BRL"


def test_the_event_form_shows_the_field_at_fault_and_keeps_the_input(alice):
    form = _event_form(ends_at="2020-01-01 00:00:00", name="Keep Me")
    response = alice["client"].post("/eventview/add", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "The event must end after it starts." in page
    assert 'value="Keep Me"' in page
    assert db.session.query(Event).count() == 0


def test_the_event_form_sets_a_waiting_room_and_names_a_bad_rate(alice):
    event = make_event(alice["partner"])
    client = alice["client"]
    refused = client.post(
        f"/eventview/edit/{event.id}", data=_event_form(waiting_room_per_minute="0")
    )
    assert refused.status_code == 200
    assert "buyers per minute" in refused.get_data(as_text=True)
    saved = client.post(
        f"/eventview/edit/{event.id}", data=_event_form(waiting_room_per_minute="1200")
    )
    assert saved.status_code == 302
    db.session.refresh(event)
    assert event.waiting_room_per_minute == 1200
    page = client.get(f"/eventview/show/{event.id}").get_data(as_text=True)
    assert "Waiting room (buyers let in per minute)" in page


def test_a_partner_edits_its_event(alice):
    event = make_event(alice["partner"])
    response = alice["client"].post(
        f"/eventview/edit/{event.id}", data=_event_form(name="Renamed", city="Recife")
    )
    assert response.status_code == 302
    db.session.refresh(event)
    assert (event.name, event.city) == ("Renamed", "Recife")


def test_publish_and_unpublish(alice):
    event = make_event(alice["partner"])
    client = alice["client"]
    client.post(f"/eventview/action/publish/{event.id}")
    db.session.refresh(event)
    assert event.status == EventStatus.PUBLISHED
    assert event.is_on_sale(utcnow())
    client.post(f"/eventview/action/unpublish/{event.id}")
    db.session.refresh(event)
    assert event.status == EventStatus.DRAFT
    assert not event.is_on_sale(utcnow())


def test_an_event_without_spots_cannot_be_published(alice):
    event = make_event(alice["partner"], sections=0)
    response = alice["client"].post(f"/eventview/action/publish/{event.id}", follow_redirects=True)
    assert "Add at least one section with spots" in response.get_data(as_text=True)
    db.session.refresh(event)
    assert event.status == EventStatus.DRAFT


def test_bulk_publish_reports_each_refusal_and_publishes_the_rest(alice):
    ready = make_event(alice["partner"], "Ready")
    empty = make_event(alice["partner"], "Empty", sections=0)
    response = alice["client"].post(
        "/eventview/action_post",
        data={"action": "publish", "rowid": [str(ready.id), str(empty.id)]},
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert "1 event(s) published." in page and "Add at least one section" in page
    db.session.refresh(ready)
    db.session.refresh(empty)
    assert (ready.status, empty.status) == (EventStatus.PUBLISHED, EventStatus.DRAFT)


def test_cancel_needs_a_reason_and_stops_sales(alice):
    event = make_event(alice["partner"])
    client = alice["client"]
    client.post(f"/eventview/action/publish/{event.id}")
    page = client.post(f"/eventview/cancel/{event.id}", data={"reason": ""})
    assert page.status_code == 200 and "This field is required." in page.get_data(as_text=True)
    response = client.post(f"/eventview/cancel/{event.id}", data={"reason": "Storm warning"})
    assert response.status_code == 302
    db.session.refresh(event)
    assert event.status == EventStatus.CANCELLED
    assert event.cancel_reason == "Storm warning"
    assert not event.is_on_sale(utcnow())
    client.post(f"/eventview/action/publish/{event.id}")
    db.session.refresh(event)
    assert event.status == EventStatus.CANCELLED


def test_an_event_with_sales_cannot_be_deleted_only_cancelled(alice):
    event = make_event(alice["partner"])
    record_sale(event.sections[0].spots[0])
    response = alice["client"].post(f"/eventview/delete/{event.id}", follow_redirects=True)
    assert "has sales: cancel it instead" in response.get_data(as_text=True)
    assert db.session.get(Event, event.id) is not None


def test_an_event_without_sales_can_be_deleted(alice):
    event_id = make_event(alice["partner"]).id
    page = alice["client"].post(f"/eventview/delete/{event_id}", follow_redirects=True)
    assert "Deleted Row" in page.get_data(as_text=True), page.get_data(as_text=True)[-3000:]
    assert db.session.get(Event, event_id) is None
    assert db.session.query(EventSpot).count() == 0


def test_a_partner_adds_a_section_with_a_decimal_price(alice):
    event = make_event(alice["partner"], sections=0)
    response = alice["client"].post(
        "/eventsectionview/add",
        data={"event": str(event.id), "name": "VIP", "kind": "seated", "price_amount": "250.50"},
    )
    assert response.status_code == 302
    section = db.session.query(EventSection).filter_by(name="VIP").one()
    assert section.price_cents == 25050


def test_a_negative_price_is_refused_at_its_field(alice):
    event = make_event(alice["partner"], sections=0)
    response = alice["client"].post(
        "/eventsectionview/add",
        data={"event": str(event.id), "name": "VIP", "kind": "seated", "price_amount": "-1"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Number must be at least 0" in page
    assert db.session.query(EventSection).count() == 0


def test_the_section_list_counts_spots_by_status(alice):
    event = make_event(alice["partner"], rows=("A", "A"), seats=4)
    spots = event.sections[0].spots
    spots[0].status = SpotStatus.BLOCKED.value
    db.session.commit()
    record_sale(spots[1])
    page = alice["client"].get(f"/eventsectionview/show/{event.sections[0].id}")
    text = page.get_data(as_text=True)
    for label, count in (("Available", 2), ("Held", 0), ("Sold", 1), ("Blocked", 1)):
        shown = re.search(rf"<th[^>]*>{label}</th>\s*<td>\s*<span[^>]*>\s*(\d+)", text)
        assert shown is not None and int(shown.group(1)) == count, label
    counts = db.session.get(EventSection, event.sections[0].id).spot_counts()
    assert counts == {"available": 2, "held": 0, "sold": 1, "blocked": 1}


def test_a_sold_ticket_keeps_its_price_when_the_section_price_changes(alice):
    event = make_event(alice["partner"])
    section = event.sections[0]
    ticket = record_sale(section.spots[0], price=section.price_cents)
    response = alice["client"].post(
        f"/eventsectionview/edit/{section.id}",
        data={"name": section.name, "kind": "seated", "price_amount": "300.00", "position": "0"},
    )
    assert response.status_code == 302
    db.session.refresh(section)
    db.session.refresh(ticket)
    assert section.price_cents == 30000
    assert ticket.price_cents == 10000


def test_a_section_with_spots_keeps_its_kind(alice):
    event = make_event(alice["partner"])
    section = event.sections[0]
    response = alice["client"].post(
        f"/eventsectionview/edit/{section.id}",
        data={"name": section.name, "kind": "general", "price_amount": "50", "position": "0"},
    )
    assert "cannot change its kind" in response.get_data(as_text=True)
    db.session.refresh(section)
    assert section.kind == "seated"


def test_generating_a_seat_block_creates_rows_times_seats(alice):
    event = make_event(alice["partner"], sections=0)
    section = EventSection(event=event, name="Plateia", kind="seated", price_cents=5000)
    db.session.add(section)
    db.session.commit()
    response = alice["client"].post(
        f"/eventsectionview/generate/{section.id}",
        data={"first_row": "A", "last_row": "E", "seats_per_row": "10", "prefix": ""},
    )
    assert response.status_code == 302
    labels = [s.label for s in db.session.query(EventSpot).order_by(EventSpot.position)]
    assert len(labels) == 50
    assert labels[:2] == ["A-1", "A-2"] and labels[-1] == "E-10"
    spot = db.session.query(EventSpot).filter_by(label="C-7").one()
    assert (spot.row_label, spot.seat_number, spot.event_id) == ("C", 7, event.id)


def test_generation_refuses_labels_that_already_exist_and_creates_nothing(alice):
    event = make_event(alice["partner"], rows=("A", "B"), seats=5)
    section = event.sections[0]
    response = alice["client"].post(
        f"/eventsectionview/generate/{section.id}",
        data={"first_row": "B", "last_row": "C", "seats_per_row": "5"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "5 of these labels already exist" in page and "B-1" in page
    assert db.session.query(EventSpot).filter_by(section_id=section.id).count() == 10


def test_general_admission_generation_appends_places_without_rows(alice):
    event = make_event(alice["partner"], sections=0)
    section = EventSection(event=event, name="Pista", kind="general", price_cents=5000)
    db.session.add(section)
    db.session.commit()
    client = alice["client"]
    client.post(f"/eventsectionview/generate/{section.id}", data={"quantity": "3"})
    client.post(f"/eventsectionview/generate/{section.id}", data={"quantity": "2"})
    spots = db.session.query(EventSpot).order_by(EventSpot.position).all()
    assert [s.label for s in spots] == ["GA-1", "GA-2", "GA-3", "GA-4", "GA-5"]
    assert all(s.row_label is None and s.seat_number is None for s in spots)


def test_block_and_unblock_spots_in_bulk(alice):
    event = make_event(alice["partner"])
    ids = [s.id for s in event.sections[0].spots[:3]]
    client = alice["client"]
    client.post(
        "/eventspotview/action_post", data={"action": "block", "rowid": [str(i) for i in ids]}
    )
    statuses = {s.status for s in db.session.query(EventSpot).filter(EventSpot.id.in_(ids))}
    assert statuses == {SpotStatus.BLOCKED}
    client.post(
        "/eventspotview/action_post", data={"action": "unblock", "rowid": [str(i) for i in ids]}
    )
    db.session.expire_all()
    statuses = {s.status for s in db.session.query(EventSpot).filter(EventSpot.id.in_(ids))}
    assert statuses == {SpotStatus.AVAILABLE}


def test_a_sold_spot_cannot_be_blocked_renamed_moved_or_deleted(alice):
    event = make_event(alice["partner"], sections=2)
    spot = event.sections[0].spots[0]
    record_sale(spot)
    client = alice["client"]
    page = client.post(
        "/eventspotview/action_post",
        data={"action": "block", "rowid": [str(spot.id)]},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "is sold and cannot be blocked" in page
    rename = client.post(
        f"/eventspotview/edit/{spot.id}",
        data={"section": str(spot.section_id), "label": "NEW-1", "row_label": "A",
              "seat_number": "1"},
    )  # fmt: skip
    assert "is sold: it cannot be renamed or moved" in rename.get_data(as_text=True)
    move = client.post(
        f"/eventspotview/edit/{spot.id}",
        data={"section": str(event.sections[1].id), "label": "A-1", "row_label": "A",
              "seat_number": "1"},
    )  # fmt: skip
    assert "is sold: it cannot be renamed or moved" in move.get_data(as_text=True)
    delete = client.post(f"/eventspotview/delete/{spot.id}", follow_redirects=True)
    assert "is sold and cannot be deleted" in delete.get_data(as_text=True)
    db.session.expire_all()
    spot = db.session.get(EventSpot, spot.id)
    assert (spot.label, spot.section_id, spot.status) == ("A-1", event.sections[0].id, "sold")


def test_an_unsold_spot_can_be_renamed_and_deleted(alice):
    event = make_event(alice["partner"])
    spot = event.sections[0].spots[0]
    client = alice["client"]
    response = client.post(
        f"/eventspotview/edit/{spot.id}",
        data={
            "section": str(spot.section_id),
            "label": "Box-1",
            "row_label": "",
            "seat_number": "",
        },
    )
    assert response.status_code == 302
    db.session.refresh(spot)
    assert spot.label == "Box-1"
    spot_id = spot.id
    client.post(f"/eventspotview/delete/{spot_id}")
    assert db.session.get(EventSpot, spot_id) is None


def test_a_spot_moves_only_within_its_event(alice):
    one = make_event(alice["partner"], "One")
    two = make_event(alice["partner"], "Two")
    spot = one.sections[0].spots[0]
    response = alice["client"].post(
        f"/eventspotview/edit/{spot.id}",
        data={"section": str(two.sections[0].id), "label": "A-1", "row_label": "A",
              "seat_number": "1"},
    )  # fmt: skip
    assert "same event" in response.get_data(as_text=True)
    db.session.refresh(spot)
    assert spot.event_id == one.id


def test_a_duplicate_label_is_refused_with_a_clear_message(alice):
    event = make_event(alice["partner"])
    section = event.sections[0]
    response = alice["client"].post(
        "/eventspotview/add", data={"section": str(section.id), "label": "A-1"}
    )
    assert response.status_code == 200
    assert "already in use" in response.get_data(as_text=True)
