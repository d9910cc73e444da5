"""The venue's time end to end: a partner enters an event's times in its zone (the dashboard
form, the API with or without an offset), storage stays UTC, and the shop, the order, the API
and the gate show them in the venue's zone with its abbreviation or offset."""

from __future__ import annotations

import datetime as dt

import pytest

from app.extensions import db
from app.models import Event
from tests.support.builders import api_token, login, make_event, make_partner, make_user
from tests.support.gate import device, open_event
from tests.support.pages import text
from tests.support.shop import CUSTOMER_PASSWORD, buy, sign_up


@pytest.fixture
def client(client):
    """A Brazilian browser: these tests read the venue's times as the default language writes
    them ("10/03/2031 21:00 AMT"); the suite's client asks for English."""
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "pt-BR"
    return client


@pytest.fixture
def alice(client):
    partner = make_partner("Aurora")
    make_user("alice", "Partner", partner)
    return partner


def _form(**overrides: str) -> dict[str, str]:
    form = {
        "name": "Boi-Bumbá na Arena", "venue": "Arena da Amazônia", "city": "Manaus",
        "timezone": "America/Manaus", "starts_at": "2031-03-10T21:00",
        "ends_at": "2031-03-10T23:30", "sales_start": "", "sales_end": "", "currency": "BRL",
    }  # fmt: skip
    form.update(overrides)
    return form


def test_a_partner_types_the_venues_time_and_sees_it_back_unshifted(client, alice):
    login(client, "alice")
    created = client.post("/eventview/add", data=_form(), follow_redirects=True)
    assert created.status_code == 200
    event = db.session.scalars(db.select(Event).where(Event.name == "Boi-Bumbá na Arena")).one()
    assert event.timezone == "America/Manaus"
    assert event.starts_at == dt.datetime(2031, 3, 11, 1, 0)  # 21:00 in Manaus (UTC-4), in UTC
    # The edit form shows what was typed, and saving it unchanged moves nothing.
    edit = text(client.get(f"/eventview/edit/{event.id}"))
    assert 'value="2031-03-10T21:00"' in edit
    saved = client.post(f"/eventview/edit/{event.id}", data=_form(), follow_redirects=True)
    assert saved.status_code == 200
    db.session.expire_all()
    assert db.session.get(Event, event.id).starts_at == dt.datetime(2031, 3, 11, 1, 0)
    listed = text(client.get("/eventview/list/"))
    assert "10/03/2031 21:00 AMT" in listed


def test_a_time_the_venues_clocks_skip_is_refused_at_its_field(client, alice):
    login(client, "alice")
    page = client.post(
        "/eventview/add",
        data=_form(timezone="Europe/Lisbon", starts_at="2031-03-30T01:30", ends_at=""),
    )
    assert page.status_code == 200
    assert "30/03/2031 01:30 não existe em Europe/Lisbon" in text(page)
    assert 'value="2031-03-30T01:30"' in text(page)  # the input is kept
    assert db.session.scalar(db.select(db.func.count(Event.id))) == 0


def test_an_event_in_manaus_reads_in_manaus_time_wherever_the_buyer_is(client):
    event = make_event(make_partner("Aurora"), "Boi-Bumbá", timezone="America/Manaus")
    event.starts_at = dt.datetime(2031, 3, 11, 1, 0)  # 21:00 in Manaus, 22:00 in São Paulo
    event.ends_at = dt.datetime(2031, 3, 11, 3, 0)
    event.publish()
    db.session.commit()
    page = text(client.get(f"/events/{event.id}"))
    assert "10/03/2031 21:00 AMT" in page and "22:00" not in page
    shown = client.get(f"/api/v1/catalog/events/{event.id}").get_json()["result"]
    assert shown["starts_at"] == "2031-03-10T21:00:00-04:00"
    assert shown["timezone"] == "America/Manaus"
    order = buy(client, event, 1, buyer=sign_up(client, "ana@example.com"))
    login(client, "ana@example.com", CUSTOMER_PASSWORD)
    assert "10/03/2031 21:00 AMT" in text(client.get(f"/orders/{order['id']}"))


def test_the_api_takes_offsets_as_instants_and_bare_times_as_the_venues(client, alice):
    headers = api_token(client, "alice")
    bare = client.post(
        "/api/v1/events/",
        json={"name": "Fado", "venue": "Alfama", "city": "Lisboa", "timezone": "Europe/Lisbon",
              "starts_at": "2031-07-10T21:00:00", "ends_at": "2031-12-10T21:00:00"},
        headers=headers,
    )  # fmt: skip
    assert bare.status_code == 201, bare.get_json()
    event = db.session.get(Event, bare.get_json()["id"])
    # Summer in Lisbon is UTC+1, winter UTC+0.
    assert (event.starts_at, event.ends_at) == (
        dt.datetime(2031, 7, 10, 20, 0),
        dt.datetime(2031, 12, 10, 21, 0),
    )
    answer = client.get(f"/api/v1/events/{event.id}", headers=headers).get_json()["result"]
    assert answer["starts_at"] == "2031-07-10T21:00:00+01:00"
    assert answer["ends_at"] == "2031-12-10T21:00:00+00:00"
    moved = client.put(
        f"/api/v1/events/{event.id}",
        json={"starts_at": "2031-07-10T18:00:00-03:00"},  # given from São Paulo: same instant
        headers=headers,
    )
    assert moved.status_code == 200, moved.get_json()
    db.session.expire_all()
    assert db.session.get(Event, event.id).starts_at == dt.datetime(2031, 7, 10, 21, 0)
    renamed = client.put(f"/api/v1/events/{event.id}", json={"name": "Fado"}, headers=headers)
    assert renamed.status_code == 200  # times not sent are not moved
    db.session.expire_all()
    assert db.session.get(Event, event.id).starts_at == dt.datetime(2031, 7, 10, 21, 0)
    listed = client.get("/api/v1/events/", headers=headers).get_json()["result"]
    assert listed[0]["starts_at"] == "2031-07-10T22:00:00+01:00"


def test_the_gate_gets_the_venues_zone_with_its_events_and_manifest(client):
    partner = make_partner("Aurora")
    event = open_event(partner, timezone="America/Rio_Branco")
    gate = device(partner, event)
    events = client.get("/api/v1/checkin/events", headers=gate).get_json()["events"]
    assert events[0]["timezone"] == "America/Rio_Branco"
    manifest = client.get(f"/api/v1/checkin/events/{event.id}/manifest", headers=gate)
    assert manifest.get_json()["timezone"] == "America/Rio_Branco"
