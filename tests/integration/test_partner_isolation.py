"""A partner's users reach only their own partner's rows, through every route (invariant 6)."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import Event, EventSection, EventSpot, EventStatus, SpotStatus
from tests.support.builders import api_token, login


@pytest.fixture
def bob(client, two_partners):
    """Partner B's user, logged in, and partner A's rows he must never reach."""
    event = two_partners["event_a"]
    section = event.sections[0]
    spot = section.spots[0]
    login(client, "bob")
    return {
        "client": client,
        "event": event.id,
        "section": section.id,
        "spot": spot.id,
        "own_event": two_partners["event_b"].id,
    }


VIEW_ROUTES = [
    ("GET", "/eventview/show/{event}"),
    ("GET", "/eventview/edit/{event}"),
    ("POST", "/eventview/edit/{event}"),
    ("POST", "/eventview/delete/{event}"),
    ("GET", "/eventview/cancel/{event}"),
    ("POST", "/eventview/cancel/{event}"),
    ("POST", "/eventview/action/publish/{event}"),
    ("POST", "/eventview/action/unpublish/{event}"),
    ("POST", "/eventview/action/cancel_event/{event}"),
    ("GET", "/eventsectionview/show/{section}"),
    ("GET", "/eventsectionview/edit/{section}"),
    ("POST", "/eventsectionview/edit/{section}"),
    ("POST", "/eventsectionview/delete/{section}"),
    ("GET", "/eventsectionview/generate/{section}"),
    ("POST", "/eventsectionview/generate/{section}"),
    ("POST", "/eventsectionview/action/generate/{section}"),
    ("GET", "/eventspotview/show/{spot}"),
    ("GET", "/eventspotview/edit/{spot}"),
    ("POST", "/eventspotview/edit/{spot}"),
    ("POST", "/eventspotview/delete/{spot}"),
    ("POST", "/eventspotview/action/block/{spot}"),
    ("POST", "/eventspotview/action/unblock/{spot}"),
]


@pytest.mark.parametrize(("method", "route"), VIEW_ROUTES)
def test_dashboard_routes_answer_404_for_another_partners_rows(bob, method, route):
    client = bob["client"]
    data = {"name": "hijack", "reason": "hijack", "first_row": "X", "last_row": "X"}
    data["seats_per_row"] = "1"
    response = client.open(route.format(**bob), method=method, data=data)
    assert response.status_code == 404, response.status_code
    event = db.session.get(Event, bob["event"])
    db.session.refresh(event)
    assert event.name == "A Concert" and event.status == EventStatus.DRAFT
    assert db.session.get(EventSpot, bob["spot"]).status == SpotStatus.AVAILABLE


@pytest.mark.parametrize(
    ("view", "key", "action"),
    [
        ("eventview", "event", "publish"),
        ("eventview", "event", "unpublish"),
        ("eventspotview", "spot", "block"),
    ],
)
def test_bulk_actions_answer_404_when_any_selected_row_is_foreign(bob, view, key, action):
    response = bob["client"].post(
        f"/{view}/action_post", data={"action": action, "rowid": [str(bob[key])]}
    )
    assert response.status_code == 404
    assert db.session.get(EventSpot, bob["spot"]).status == SpotStatus.AVAILABLE


def test_lists_show_only_own_rows(bob):
    client = bob["client"]
    events = client.get("/eventview/list/").get_data(as_text=True)
    assert "B Concert" in events and "A Concert" not in events
    sections = client.get("/eventsectionview/list/").get_data(as_text=True)
    assert "B Concert" in sections and "A Concert" not in sections
    spots = client.get("/eventspotview/list/").get_data(as_text=True)
    assert "B Concert" in spots and "A Concert" not in spots


def test_search_on_a_foreign_event_finds_nothing(bob):
    page = bob["client"].get(f"/eventspotview/list/?_flt_0_event={bob['event']}")
    assert page.status_code == 200
    assert "A Concert" not in page.get_data(as_text=True)


def test_relation_pickers_offer_only_own_rows(bob):
    client = bob["client"]
    section_form = client.get("/eventsectionview/add").get_data(as_text=True)
    assert "B Concert" in section_form and "A Concert" not in section_form
    spot_form = client.get("/eventspotview/add").get_data(as_text=True)
    assert "B Concert" in spot_form and "A Concert" not in spot_form
    search = client.get("/eventspotview/list/").get_data(as_text=True)
    assert "A Concert" not in search


def test_a_tampered_picker_cannot_attach_a_section_to_a_foreign_event(bob):
    response = bob["client"].post(
        "/eventsectionview/add",
        data={"event": str(bob["event"]), "name": "Sneaky", "kind": "seated", "price_amount": "1"},
    )
    assert response.status_code == 200  # the form again, with the error
    assert db.session.query(EventSection).filter_by(name="Sneaky").count() == 0


def test_export_contains_only_own_rows(bob):
    response = bob["client"].get("/eventspotview/export.csv")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "B Concert" in body and "A Concert" not in body


API_ROUTES = [
    ("GET", "/api/v1/events/{event}"),
    ("PUT", "/api/v1/events/{event}"),
    ("DELETE", "/api/v1/events/{event}"),
    ("GET", "/api/v1/sections/{section}"),
    ("PUT", "/api/v1/sections/{section}"),
    ("DELETE", "/api/v1/sections/{section}"),
    ("GET", "/api/v1/spots/{spot}"),
    ("PUT", "/api/v1/spots/{spot}"),
    ("DELETE", "/api/v1/spots/{spot}"),
]


@pytest.mark.parametrize(("method", "route"), API_ROUTES)
def test_api_answers_404_for_another_partners_rows(client, two_partners, method, route):
    headers = api_token(client, "bob")
    event = two_partners["event_a"]
    ids = {
        "event": event.id,
        "section": event.sections[0].id,
        "spot": event.sections[0].spots[0].id,
    }
    response = client.open(route.format(**ids), method=method, json={"name": "x"}, headers=headers)
    assert response.status_code == 404
    assert db.session.get(Event, event.id) is not None


def test_api_lists_only_own_rows(client, two_partners):
    headers = api_token(client, "bob")
    for resource, owner_field in (("events", "name"), ("sections", "name"), ("spots", "label")):
        body = client.get(f"/api/v1/{resource}/?q=(page_size:100)", headers=headers).get_json()
        assert body["count"] > 0
        assert owner_field in body["result"][0]
    events = client.get("/api/v1/events/", headers=headers).get_json()["result"]
    assert [e["name"] for e in events] == ["B Concert"]
    sections = client.get("/api/v1/sections/", headers=headers).get_json()["result"]
    assert {s["event"]["id"] for s in sections} == {two_partners["event_b"].id}


def test_api_cannot_attach_rows_to_a_foreign_parent(client, two_partners):
    headers = api_token(client, "bob")
    foreign_event = two_partners["event_a"]
    response = client.post(
        "/api/v1/sections/",
        json={"event": foreign_event.id, "name": "Sneaky", "kind": "seated", "price_cents": 1},
        headers=headers,
    )
    assert response.status_code == 404
    response = client.post(
        "/api/v1/spots/",
        json={"section": foreign_event.sections[0].id, "label": "Z-9"},
        headers=headers,
    )
    assert response.status_code == 404
    response = client.post(
        "/api/v1/events/",
        json={
            "partner": two_partners["a"].id,
            "name": "Sneaky",
            "venue": "V",
            "city": "C",
            "starts_at": "2030-01-01T20:00:00",
        },
        headers=headers,
    )
    assert response.status_code == 404
    assert db.session.query(Event).filter_by(name="Sneaky").count() == 0
    assert db.session.query(EventSection).filter_by(name="Sneaky").count() == 0


def test_gate_staff_see_only_their_partners_events_and_change_nothing(client, two_partners):
    login(client, "gina")
    page = client.get("/eventview/list/").get_data(as_text=True)
    assert "A Concert" in page and "B Concert" not in page
    assert client.get(f"/eventview/show/{two_partners['event_b'].id}").status_code == 404
    response = client.post(f"/eventview/edit/{two_partners['event_a'].id}", data={"name": "x"})
    assert response.status_code in (302, 403)
    assert db.session.get(Event, two_partners["event_a"].id).name == "A Concert"


def test_admin_sees_every_partners_rows(client, two_partners):
    login(client, "root")
    page = client.get("/eventview/list/").get_data(as_text=True)
    assert "A Concert" in page and "B Concert" in page
    assert "Partner A" in page and "Partner B" in page
