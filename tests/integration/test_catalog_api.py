"""The REST API for events, sections and spots: JWT login, the same rules, JSON errors."""

from __future__ import annotations

from app.extensions import db
from app.models import Event, EventSection, EventSpot, SpotStatus
from tests.support.builders import api_token, make_event, make_partner, make_user, record_sale


def _alice(client):
    partner = make_partner("Aurora")
    make_user("alice", "Partner", partner)
    return partner, api_token(client, "alice")


def test_the_api_needs_a_token(client):
    response = client.get("/api/v1/events/")
    assert response.status_code == 401
    assert response.is_json


def test_a_partner_builds_an_event_through_the_api(client):
    partner, headers = _alice(client)
    event = client.post(
        "/api/v1/events/",
        json={
            "name": "API Night",
            "venue": "Hall",
            "city": "Recife",
            "starts_at": "2031-05-01T20:00:00",
            "ends_at": "2031-05-01T23:00:00",
        },
        headers=headers,
    )
    assert event.status_code == 201, event.get_json()
    event_id = event.get_json()["id"]
    section = client.post(
        "/api/v1/sections/",
        json={"event": event_id, "name": "Pista", "kind": "general", "price_cents": 5000},
        headers=headers,
    )
    assert section.status_code == 201, section.get_json()
    section_id = section.get_json()["id"]
    spot = client.post(
        "/api/v1/spots/", json={"section": section_id, "label": "GA-1"}, headers=headers
    )
    assert spot.status_code == 201, spot.get_json()
    stored = db.session.get(Event, event_id)
    assert stored.partner_id == partner.id and stored.currency == "BRL"
    assert db.session.get(EventSpot, spot.get_json()["id"]).event_id == event_id
    shown = client.get(f"/api/v1/sections/{section_id}", headers=headers).get_json()["result"]
    assert shown["available_count"] == 1 and shown["sold_count"] == 0


def test_api_rule_violations_answer_4xx_with_a_json_reason(client):
    partner, headers = _alice(client)
    event = make_event(partner)
    bad_times = client.put(
        f"/api/v1/events/{event.id}",
        json={"ends_at": "2000-01-01T00:00:00"},
        headers=headers,
    )
    assert bad_times.status_code == 422
    assert bad_times.get_json() == {
        "error": "invalid",
        "message": "The event must end after it starts.",
        "field": "ends_at",
    }
    negative = client.post(
        "/api/v1/sections/",
        json={"event": event.id, "name": "X", "kind": "seated", "price_cents": -5},
        headers=headers,
    )
    assert negative.status_code == 422 and negative.get_json()["field"] == "price_cents"
    wrong_kind = client.post(
        "/api/v1/sections/",
        json={"event": event.id, "name": "Y", "kind": "vip", "price_cents": 5},
        headers=headers,
    )
    assert wrong_kind.status_code == 422 and wrong_kind.get_json()["field"] == "kind"
    assert db.session.query(EventSection).filter(EventSection.name.in_(["X", "Y"])).count() == 0


def test_api_conflicts_answer_409(client):
    partner, headers = _alice(client)
    event = make_event(partner)
    spot = event.sections[0].spots[0]
    record_sale(spot)
    rename = client.put(f"/api/v1/spots/{spot.id}", json={"label": "Z-1"}, headers=headers)
    assert rename.status_code == 409
    assert "sold" in rename.get_json()["message"]
    delete_spot = client.delete(f"/api/v1/spots/{spot.id}", headers=headers)
    assert delete_spot.status_code == 409
    delete_event = client.delete(f"/api/v1/events/{event.id}", headers=headers)
    assert delete_event.status_code == 409
    duplicate = client.post(
        "/api/v1/spots/",
        json={"section": event.sections[0].id, "label": "A-2"},
        headers=headers,
    )
    assert duplicate.status_code == 409
    db.session.expire_all()
    assert db.session.get(EventSpot, spot.id).label == "A-1"
    assert db.session.get(EventSpot, spot.id).status == SpotStatus.SOLD


def test_missing_rows_answer_404_in_json(client):
    _, headers = _alice(client)
    for path in ("/api/v1/events/999999", "/api/v1/sections/999999", "/api/v1/spots/999999"):
        response = client.get(path, headers=headers)
        assert response.status_code == 404 and response.is_json


def test_the_openapi_spec_describes_the_catalog_api(client):
    make_user("root", "Admin")
    headers = api_token(client, "root")
    spec = client.get("/api/v1/_openapi", headers=headers)
    assert spec.status_code == 200
    paths = spec.get_json()["paths"]
    for resource in ("events", "sections", "spots"):
        assert f"/api/v1/{resource}/" in paths
        assert f"/api/v1/{resource}/{{pk}}" in paths
