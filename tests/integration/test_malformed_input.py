"""Malformed ids, bodies and query strings answer 4xx with a reason, never 500.

Found by fuzzing the API with schemathesis and by asking every route with bad ids: on
PostgreSQL an id past 2**31 - 1 was "integer out of range" and a text id "invalid input
syntax", both 500; FAB's action and download routes trusted their names.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from app.extensions import db
from app.models import Event
from tests.support.builders import api_token, login
from tests.support.shop import buy, sign_up

pytestmark = pytest.mark.usefixtures("db_context")

TOO_BIG = "2147483648"  # one past the id columns' largest value
BAD_IDS = {"IntegerConverter": [TOO_BIG, "99999999999999999999999"]}
BAD_TEXT_IDS = [TOO_BIG, "x", "-1", "1.5", "0"]


def _paths_with_one_bad_argument(app):
    """(method, path) for every route with arguments, each argument in turn made bad."""
    for rule in app.url_map.iter_rules():
        if not rule.arguments or rule.endpoint == "static":
            continue
        for arg in sorted(rule.arguments):
            converter = type(rule._converters[arg]).__name__
            for value in BAD_IDS.get(converter, BAD_TEXT_IDS):
                path = rule.rule
                for name in rule.arguments:
                    path = re.sub(rf"<(?:[^<>]+:)?{name}>", value if name == arg else "1", path)
                for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                    yield method, path


@pytest.mark.parametrize("username", ["root", "alice"])
def test_no_route_answers_500_to_a_malformed_id_or_name(app, two_partners, username):
    browser = login(app.test_client(), username)
    headers = api_token(app.test_client(), username)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer as in production: a crash is a 500
    failures = []
    try:
        for method, path in _paths_with_one_bad_argument(app):
            if path.startswith("/api/"):
                kwargs = {"headers": headers, "json": {} if method in ("POST", "PUT") else None}
            else:
                kwargs = {"data": {} if method == "POST" else None}
            response = browser.open(path, method=method, **kwargs)
            if response.status_code >= 500:
                failures.append(f"{method} {path}: {response.status_code}")
    finally:
        app.config["PROPAGATE_EXCEPTIONS"] = None
    assert not failures, "\n".join(failures)


def test_an_id_past_the_columns_range_is_not_found(client, two_partners):
    headers = api_token(client, "alice")
    for path in (f"/api/v1/events/{TOO_BIG}", f"/api/v1/catalog/events/{TOO_BIG}"):
        response = client.get(path, headers=headers)
        assert response.status_code == 404 and response.is_json, path
    assert client.put(f"/api/v1/events/{TOO_BIG}", json={}, headers=headers).status_code == 404
    assert client.delete("/api/v1/events/x", headers=headers).status_code == 404
    login(client, "alice")
    assert client.get(f"/eventview/show/{TOO_BIG}").status_code == 404
    assert client.get("/eventview/edit/x").status_code == 404


def test_dashboard_actions_refuse_unknown_names_and_bad_row_ids(client, two_partners):
    login(client, "alice")
    event = two_partners["event_a"]
    assert client.post(f"/eventview/action/no_such_action/{event.id}").status_code == 404
    assert client.post("/roles/action/no_such_action/1").status_code == 404
    response = client.post("/eventview/action_post", data={"action": "x", "rowid": ["1", "z"]})
    assert response.status_code == 404


def test_api_relation_fields_take_only_ids(client, two_partners):
    headers = api_token(client, "alice")
    event_id = two_partners["event_a"].id
    section = {"name": "Pista", "kind": "general", "price_cents": 5000}
    for bad in (False, True, "abc", {"id": event_id, "x": 1}, [event_id], 1.5):
        response = client.post("/api/v1/sections/", json={**section, "event": bad}, headers=headers)
        assert response.status_code == 422, (bad, response.get_json())
        assert response.get_json()["field"] == "event", bad
    for missing in (-1, 0, 999_999, 2**40):
        response = client.post(
            "/api/v1/sections/", json={**section, "event": missing}, headers=headers
        )
        assert response.status_code == 404, (missing, response.get_json())
        assert response.get_json()["field"] == "event"
    ok = client.post("/api/v1/sections/", json={**section, "event": event_id}, headers=headers)
    assert ok.status_code == 201, ok.get_json()


def test_the_platform_staff_naming_a_missing_partner_get_404_not_a_conflict(client, two_partners):
    headers = api_token(client, "root")
    response = client.post(
        "/api/v1/events/",
        json={
            "partner": 999_999,
            "name": "Nobody's",
            "venue": "V",
            "city": "C",
            "starts_at": "2031-01-01T20:00:00",
        },
        headers=headers,
    )
    assert response.status_code == 404, response.get_json()
    assert response.get_json()["field"] == "partner"


def test_times_with_an_offset_are_stored_as_utc(client, two_partners):
    headers = api_token(client, "alice")
    event = two_partners["event_a"]
    response = client.put(
        f"/api/v1/events/{event.id}",
        json={"starts_at": "2031-03-01T20:00:00-03:00", "ends_at": "2031-03-01T23:30:00Z"},
        headers=headers,
    )
    assert response.status_code == 200, response.get_json()
    db.session.expire_all()
    stored = db.session.get(Event, event.id)
    assert stored.starts_at == dt.datetime(2031, 3, 1, 23, 0)
    assert stored.ends_at == dt.datetime(2031, 3, 1, 23, 30)
    bad = client.put(
        f"/api/v1/events/{event.id}",
        json={"starts_at": "2031-03-01T20:00:00-03:00", "ends_at": "2031-03-01T22:00:00Z"},
        headers=headers,
    )
    assert bad.status_code == 422 and bad.get_json()["field"] == "ends_at"


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+02:00", "9999-12-31T23:00-03:00"])
def test_a_time_that_leaves_the_calendar_in_utc_is_a_400_naming_its_field(
    client, two_partners, when
):
    headers = api_token(client, "alice")
    event = two_partners["event_a"]
    response = client.put(f"/api/v1/events/{event.id}", json={"starts_at": when}, headers=headers)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["field"] == "starts_at"


@pytest.mark.parametrize(
    "query",
    [
        "(page:-1,page_size:10)",
        "(page:-36893488147419103231,page_size:4048)",
        "(page:99999999999999999999,page_size:10)",
        "(order_column:nope,order_direction:desc)",
        "not rison at all (",
    ],
)
def test_api_lists_answer_400_to_a_page_or_order_that_cannot_exist(client, two_partners, query):
    headers = api_token(client, "alice")
    response = client.get("/api/v1/events/", query_string={"q": query}, headers=headers)
    assert response.status_code == 400, (query, response.status_code, response.get_data())
    assert response.is_json


@pytest.mark.parametrize(
    "query",
    [
        "(page:0,page_size:-913)",
        "(select_columns:!(nope),page:0)",
        "(filters:!((col:name,opr:nope,value:x)))",
    ],
)
def test_api_lists_ignore_unknown_columns_and_sizes_as_fab_does(client, two_partners, query):
    """FAB's documented leniency: an unknown column or operator is ignored, a page size out
    of bounds becomes the largest."""
    headers = api_token(client, "alice")
    response = client.get("/api/v1/events/", query_string={"q": query}, headers=headers)
    assert response.status_code == 200, (query, response.get_data())
    assert response.get_json()["count"] == 1  # alice's one event, scope kept


def test_catalog_spot_map_refuses_a_section_id_out_of_range(client, two_partners):
    event = two_partners["event_a"]
    event.publish()
    db.session.commit()
    path = f"/api/v1/catalog/events/{event.id}/spots"
    for bad in ("-11377090697", TOO_BIG, "x"):
        response = client.get(path, query_string={"section_id": bad})
        assert response.status_code == 400, (bad, response.status_code)
        assert response.get_json()["field"] == "section_id"


def test_sign_up_refuses_an_email_longer_than_the_login_name_column(client):
    email = "a" * 120 + "@example.com"  # 132 characters: a valid address, too long a login
    response = client.post(
        "/api/v1/customers/", json={"name": "Ana", "email": email, "password": "Ingresso-Azul-77"}
    )
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["field"] == "email"
    assert "too long" in response.get_json()["message"]


def test_an_api_call_made_with_the_session_cookie_needs_the_csrf_token(app, client, on_sale):
    """A form on another site posting to the API rode the customer's session cookie: it
    cancelled and refunded their paid order (found by a security review)."""
    event = on_sale
    event.refund_window_hours = 24  # customers may cancel up to a day before it starts
    db.session.commit()
    headers = sign_up(client)
    order_id = buy(client, event, buyer=headers)["id"]
    client.post("/login/", data={"username": "ana@example.com", "password": "Ingresso-Azul-77"})
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        forged = client.post(
            f"/api/v1/orders/{order_id}/cancel",
            data="x=1",
            headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
        )
        assert forged.status_code == 400, forged.get_data(as_text=True)[:300]
        assert (
            client.get(f"/api/v1/orders/{order_id}", headers=headers).get_json()["result"]["status"]
            == "paid"
        )
        with_token = client.post(f"/api/v1/orders/{order_id}/cancel", headers=headers)
        assert with_token.status_code == 200, with_token.get_json()  # a bearer token: no cookie
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
