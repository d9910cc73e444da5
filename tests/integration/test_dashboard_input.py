"""Dashboards and the partner API under bad or hostile input, and the permissions their
buttons need (found by a review of the role dashboards)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

import pytest
import sqlalchemy as sa
from flask import url_for

from app.extensions import db
from app.models import Event
from app.models.base import utcnow
from tests.support.builders import api_token, login, make_user
from tests.support.gate import device, open_event
from tests.support.shop import hold_seats, sign_up

pytestmark = pytest.mark.usefixtures("db_context")


def test_the_csv_export_quotes_text_a_spreadsheet_would_run(client, two_partners):
    event = two_partners["event_b"]
    event.name = '=HYPERLINK("http://evil.example","Click")'
    db.session.commit()
    login(client, "root")
    response = client.get("/eventview/export.csv")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    names = [row[0] for row in rows[1:]]
    assert '\'=HYPERLINK("http://evil.example","Click")' in names
    assert not any(name.startswith("=") for name in names)


@pytest.mark.parametrize(
    ("username", "view"),
    [("root", "orderview"), ("fiona", "orderview"), ("fiona", "ledgertransactionview"),
     ("alice", "payoutview"), ("gina", "checkinview")],
)  # fmt: skip
def test_the_export_button_works_for_whoever_sees_it(client, two_partners, username, view):
    login(client, username)
    listing = client.get(f"/{view}/list/")
    assert listing.status_code == 200
    assert "Export CSV" in listing.get_data(as_text=True)
    assert client.get(f"/{view}/export.csv").status_code == 200


def test_no_export_button_without_the_permission(client, two_partners):
    login(client, "alice")
    listing = client.get("/gatedeviceview/list/")
    assert listing.status_code == 200
    assert "Export CSV" not in listing.get_data(as_text=True)
    assert client.get("/gatedeviceview/export.csv").status_code == 403


@pytest.mark.parametrize("username", ["alice", "fiona", "gina", "root"])
def test_every_dashboard_user_sees_their_profile(client, two_partners, username):
    login(client, username)
    response = client.get("/users/userinfo/")
    assert response.status_code == 200
    assert f"{username}@example.com" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        "/eventview/list/?_psize_EventView=abc",
        "/eventview/list/?page_EventView=abc",
        "/eventview/list/?_oc_EventView=nope&_od_EventView=asc",
        "/eventview/list/?psize_EventView=-1",
        "/eventview/list/?page_EventView=-1",
        "/eventview/list/?_flt_0_partner=abc",
        "/checkinview/list/?_flt_0_offline=x",
        "/eventview/export.csv?_flt_0_partner=abc",
        "/eventspotview/export.csv?_flt_0_event=abc",
        # Platform views that are not partner-scoped, and the users view.
        "/customerview/list/?page_CustomerView=abc",
        "/settlementview/list/?_oc_SettlementView=nope&_od_SettlementView=asc",
        "/settlementlineview/list/?psize_SettlementLineView=-1",
        "/users/list/?page_PartnerUserDBModelView=x",
    ],
)
def test_a_bad_list_address_shows_the_whole_list_with_a_warning(client, two_partners, path):
    login(client, "root")
    response = client.get(path)
    assert response.status_code in (200, 302), (path, response.status_code)
    if response.status_code == 302:
        assert response.headers["Location"].endswith("/list/")
        assert "not valid" in client.get(response.headers["Location"]).get_data(as_text=True)


@pytest.mark.parametrize("query", ["endpoint=x", "_external=1", "_scheme=https", "_method=POST"])
def test_query_keys_that_links_would_take_as_url_for_arguments_are_refused(
    client, two_partners, query
):
    login(client, "root")
    assert client.get(f"/eventview/list/?{query}").status_code == 400
    assert client.get(f"/?{query}").status_code == 400


def test_the_export_link_keeps_the_lists_filters(client, two_partners):
    login(client, "root")
    response = client.get("/eventview/list/?_flt_0_name=A&_oc_EventView=name&_od_EventView=asc")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert (
        "/eventview/export.csv?_flt_0_name=A&amp;_oc_EventView=name&amp;_od_EventView=asc" in page
    )
    exported = client.get("/eventview/export.csv?_flt_0_name=A").get_data(as_text=True)
    assert "A Concert" in exported and "B Concert" not in exported


def test_the_api_refuses_blank_names_the_form_refuses(client, two_partners):
    headers = api_token(client, "alice")
    event = two_partners["event_a"]
    for field in ("name", "venue", "city"):
        response = client.put(f"/api/v1/events/{event.id}", json={field: "  "}, headers=headers)
        assert response.status_code == 422, (field, response.get_json())
        assert response.get_json()["field"] == field
    db.session.expire_all()
    assert db.session.get(Event, event.id).name == "A Concert"
    spot = client.post(
        "/api/v1/spots/", json={"section": event.sections[0].id, "label": ""}, headers=headers
    )
    assert spot.status_code == 422 and spot.get_json()["field"] == "label"


@pytest.mark.parametrize("seat", ["99999999999", "-7", "0"])
def test_the_spot_form_refuses_a_seat_number_out_of_range(client, two_partners, seat):
    login(client, "alice")
    section = two_partners["event_a"].sections[0]
    response = client.post(
        "/eventspotview/add",
        data={"section": str(section.id), "label": "Z-1", "row_label": "Z", "seat_number": seat},
    )
    assert response.status_code == 200, response.status_code  # the form again, with the error
    assert "Z-1" in response.get_data(as_text=True)


def test_an_api_filter_value_of_the_wrong_type_answers_400(client, two_partners):
    headers = api_token(client, "alice")
    for resource in ("spots", "sections"):
        response = client.get(
            f"/api/v1/{resource}/",
            query_string={"q": "(filters:!((col:event,opr:rel_o_m,value:abc)))"},
            headers=headers,
        )
        assert response.status_code in (200, 400), (resource, response.get_data())
        assert response.is_json


def test_an_offline_scan_with_a_malformed_verdict_is_refused(client, two_partners):
    event = open_event(two_partners["a"], "Gate night")
    auth = device(two_partners["a"], event)
    scan = {"code": "x", "gate": "North", "direction": "in", "nonce": uuid.uuid4().hex}
    for verdict in ({}, [], 1):
        response = client.post(
            "/api/v1/checkin/offline-scans",
            json={"scans": [{**scan, "verdict": verdict}]},
            headers=auth,
        )
        assert response.status_code in (200, 422), response.get_data()
        assert "verdict" in response.get_data(as_text=True)


def test_a_report_period_ending_at_the_last_date_is_refused_at_its_field(client, two_partners):
    make_user("fin2", "Finance")
    login(client, "fin2")
    response = client.post(
        "/reportview/add",
        data={
            "kind": "sales_by_event",
            "format": "csv",
            "partner": "",
            "start": "2024-01-01",
            "end": "9999-12-31",
        },
    )
    assert response.status_code == 200
    assert "too far away" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/?q=a%00b", {}),
        ("GET", "/?city=%00", {}),
        ("GET", "/api/v1/catalog/events?q=%00", {}),
        ("POST", "/api/v1/security/login",
         {"json": {"username": "a\x00b", "password": "x", "provider": "db"}}),
        ("POST", "/api/v1/customers/",
         {"json": {"name": "A\x00B", "email": "ab@example.com", "password": "Secret-123"}}),
    ],
)  # fmt: skip
def test_a_nul_character_is_refused_with_400(client, method, path, kwargs):
    response = client.open(path, method=method, **kwargs)
    assert response.status_code == 400, response.get_data()
    if path.startswith("/api/"):
        assert "NUL" in response.get_json()["message"]


def test_a_row_page_shows_only_the_related_lists_the_user_may_see(app, client, two_partners):
    event = two_partners["event_a"]
    gate = login(client, "gina")  # gate staff: events yes, sections and prices no
    page = gate.get(f"/eventview/show/{event.id}").get_data(as_text=True)
    assert "A Concert" in page
    assert "Section 1" not in page and "100,00" not in page
    partner = login(app.test_client(), "alice")
    page = partner.get(f"/eventview/show/{event.id}").get_data(as_text=True)
    assert "Section 1" in page and "R$100.00" in page


def test_a_section_cannot_be_free(client, two_partners):
    """Tickets are paid by card: a price of 0 had no capture to post and left its payment
    pending, which held back the settlement of every later day (found by a review)."""
    headers = api_token(client, "alice")
    event_id = two_partners["event_a"].id
    response = client.post(
        "/api/v1/sections/",
        json={"event": event_id, "name": "Free", "kind": "general", "price_cents": 0},
        headers=headers,
    )
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["field"] == "price_cents"
    assert "at least 0.01" in response.get_json()["message"]


def test_one_payment_that_cannot_be_finished_does_not_stop_the_others(monkeypatch):
    from app.services import purchase
    from app.services.payments import gateway

    finished = []

    def complete(session, gateway, payment_id):
        if payment_id == 1:
            raise RuntimeError("this one is broken")
        finished.append(payment_id)

    class Stale:
        def all(self):
            return [1, 2]

    class FakeSession:
        def scalars(self, _query):
            return Stale()

        def rollback(self):
            pass

    monkeypatch.setattr(purchase.checkout, "complete_payment", complete)
    monkeypatch.setattr(purchase.confirm, "refund_lost", lambda *args: None)
    monkeypatch.setattr(purchase.reconcile.refunds, "finish_pending_refunds", lambda *args: 0)
    counts = purchase.reconcile.reconcile_payments(FakeSession(), gateway(), utcnow())
    assert finished == [2] and counts["finished"] == 1


def test_an_event_keeps_its_currency_while_seats_are_held(client, two_partners):
    """A hold quoted its total in the event's currency: changing it before the customer paid
    charged another currency than the one quoted (found by a review)."""
    event = two_partners["event_a"]
    event.publish()
    db.session.commit()
    hold_seats(client, sign_up(client), event, count=2)
    headers = api_token(client, "alice")
    response = client.put(f"/api/v1/events/{event.id}", json={"currency": "USD"}, headers=headers)
    assert response.status_code == 409, response.get_json()
    assert response.get_json()["field"] == "currency"
    db.session.expire_all()
    assert db.session.get(Event, event.id).currency == "BRL"


def test_no_price_or_fee_may_leave_the_partner_nothing(client, two_partners):
    """A sale whose fee took the whole price posted nothing to the partner, so it vanished from
    their balance, statement and sales report (found by a review). Partner A charges 10 % +
    1.00 a ticket."""
    headers = api_token(client, "alice")
    event_id = two_partners["event_a"].id
    section = {"event": event_id, "name": "Cheap", "kind": "general"}
    refused = client.post(
        "/api/v1/sections/", json={**section, "price_cents": 100}, headers=headers
    )
    assert refused.status_code == 422, refused.get_json()
    assert refused.get_json()["field"] == "price_cents"
    kept = client.post("/api/v1/sections/", json={**section, "price_cents": 112}, headers=headers)
    assert kept.status_code == 201, kept.get_json()  # 11 + 100 in fees: 1 cent is left
    login(client, "root")
    partner_id = two_partners["a"].id
    form = {"name": "Partner A", "status": "approved", "contact_email": "p@example.com"}
    response = client.post(
        f"/partnerview/edit/{partner_id}",
        data={**form, "fee_percent": "10", "fee_fixed_amount": "1,01"},
    )
    assert response.status_code == 200  # the form again, with the error
    assert "take the whole price of its 1.12 tickets" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(type(two_partners["a"]), partner_id).fee_fixed_cents == 100


def _lists(app):
    """(path of the list, view) of every dashboard list, FAB's own (roles, permissions) too."""
    from flask_appbuilder.baseviews import BaseCRUDView

    for view in app.appbuilder.baseviews:
        endpoint = f"{view.endpoint}.list"
        if isinstance(view, BaseCRUDView) and endpoint in app.view_functions:
            with app.test_request_context():
                yield url_for(endpoint), view


def _bad_list_addresses(view):
    name = type(view).__name__
    yield {f"page_{name}": "abc"}
    yield {f"page_{name}": "-1"}
    yield {f"psize_{name}": "-1"}
    yield {f"psize_{name}": "1e3"}
    yield {f"_oc_{name}": "nope", f"_od_{name}": "asc"}
    for column in view._filters.get_search_filters():
        past = len(view._filters._all_filters[column])
        if past < 10:  # the index is one digit
            yield {f"_flt_{past}_{column}": "1"}


def test_every_dashboard_list_shows_itself_whole_for_an_address_it_cannot_read(app, two_partners):
    """FAB read a list's page with int(), indexed a column's filters by the digit after _flt_
    and handed any order column to the database: each was a 500 (the filter index even for
    gate staff, /eventspotview/list/?_flt_2_event=1)."""
    client = login(app.test_client(), "root")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    failures = []
    try:
        for path, view in _lists(app):
            for query in _bad_list_addresses(view):
                response = client.get(path, query_string=query)
                if response.status_code != 302 or response.headers["Location"] != path:
                    failures.append(f"{path} {query}: {response.status_code}")
    finally:
        app.config["PROPAGATE_EXCEPTIONS"] = None
    assert not failures, "\n".join(failures)
    assert "not valid" in client.get(path).get_data(as_text=True)  # the warning, once


FILTER_VALUES = ("abc", "99999999999999999999", "\uff11", "0000-01-01")


def test_every_filter_of_every_list_takes_any_text(app, two_partners):
    client = login(app.test_client(), "root")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    failures = []
    try:
        for path, view in _lists(app):
            for column in view._filters.get_search_filters():
                for index in range(len(view._filters._all_filters[column])):
                    for value in FILTER_VALUES if index == 0 else FILTER_VALUES[:1]:
                        query = {f"_flt_{index}_{column}": value}
                        response = client.get(path, query_string=query)
                        if response.status_code >= 500:
                            failures.append(f"{path} {query}: {response.status_code}")
    finally:
        app.config["PROPAGATE_EXCEPTIONS"] = None
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "path",
    ["/eventspotview/list/", "/eventview/list/", "/checkinview/list/", "/checkinview/export.csv"],
)
def test_gate_staff_with_a_filter_past_the_last_get_the_whole_list(app, client, two_partners, path):
    view = app.view_functions[app.url_map.bind("").match(path)[0]].__self__
    column, filters = next(
        (column, filters)
        for column, filters in view._filters._all_filters.items()
        if column in view._filters.get_search_filters() and len(filters) < 10
    )
    login(client, "gina")
    response = client.get(path, query_string={f"_flt_{len(filters)}_{column}": "x"})
    assert response.status_code == 302
    assert response.headers["Location"] == path.replace("export.csv", "list/")


@pytest.mark.parametrize(
    ("field", "when"),
    [("starts_at", "0001-01-01T00:00"), ("starts_at", "9999-12-31T23:00"),
     ("ends_at", "9999-12-31T23:59"), ("checkin_opens_at", "0001-01-01T06:00"),
     ("checkin_closes_at", "9999-12-31T23:59")],
)  # fmt: skip
def test_an_event_time_in_year_1_or_9999_is_refused_at_its_field(client, two_partners, field, when):
    """The doors are worked out hours from these times: years 1 and 9999 left the calendar
    (OverflowError) when the edit was saved."""
    event = two_partners["event_a"]
    login(client, "alice")
    form = {
        "name": "A Concert",
        "venue": "Hall",
        "city": "Sao Paulo",
        "currency": "BRL",
        "starts_at": event.starts_at.strftime("%Y-%m-%dT%H:%M"),
        "ends_at": "",
        field: when,
    }
    response = client.post(f"/eventview/edit/{event.id}", data=form)
    assert response.status_code == 200, response.status_code  # the form again
    assert "in the years 2000 to 2999" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Event, event.id).starts_at == event.starts_at


def test_an_event_stored_with_a_time_in_year_1_is_not_published(client, two_partners):
    event = two_partners["event_a"]
    db.session.execute(
        sa.update(Event)
        .where(Event.id == event.id)
        .values(starts_at=dt.datetime(1, 1, 1, 3), ends_at=None)
    )
    db.session.commit()
    login(client, "alice")
    response = client.post(f"/eventview/action/publish/{event.id}", follow_redirects=True)
    assert response.status_code == 200
    assert "in the years 2000 to 2999" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Event, event.id).status == "draft"


@pytest.mark.parametrize("fee", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_a_fee_that_is_not_a_number_is_refused_at_its_field(client, two_partners, fee):
    login(client, "root")
    partner = two_partners["a"]
    form = {"name": "Partner A", "contact_email": "p@example.com", "fee_fixed_amount": "1,00"}
    response = client.post(f"/partnerview/edit/{partner.id}", data={**form, "fee_percent": fee})
    assert response.status_code == 200, response.status_code  # the form again
    assert "Give a number such as 7,5." in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(type(partner), partner.id).fee_percent == 10


SCRIPT_URLS = [
    "javascript:alert(document.cookie)",
    "JavaScript://example.com/%0Aalert(1)",
    "data:text/html;base64,PHNjcmlwdD4=",
    "//evil.example/x.png",
    "http:///x.png",
    "ftp://example.com/x.png",
]


@pytest.mark.parametrize("url", SCRIPT_URLS)
def test_an_image_address_is_http_or_https_whichever_way_it_comes(client, two_partners, url):
    """The REST API stored "javascript:..." (the form refused it) and the public catalogue
    served it."""
    event = two_partners["event_a"]
    headers = api_token(client, "alice")
    changed = client.put(f"/api/v1/events/{event.id}", json={"image_url": url}, headers=headers)
    assert changed.status_code == 422, changed.get_json()
    assert changed.get_json()["field"] == "image_url"
    created = client.post(
        "/api/v1/events/",
        json={"name": "N", "venue": "V", "city": "C", "starts_at": "2031-01-01T20:00:00",
              "image_url": url},
        headers=headers,
    )  # fmt: skip
    assert created.status_code == 422 and created.get_json()["field"] == "image_url"
    login(client, "alice")
    form = {"name": "A Concert", "venue": "Hall", "city": "Sao Paulo", "currency": "BRL",
            "starts_at": event.starts_at.strftime("%Y-%m-%dT%H:%M"), "image_url": url}  # fmt: skip
    page = client.post(f"/eventview/edit/{event.id}", data=form)
    assert page.status_code == 200 and "http(s) address" in page.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Event, event.id).image_url is None
    assert db.session.query(Event).count() == 2


def test_an_http_image_address_is_kept_and_served(client, two_partners):
    event = two_partners["event_a"]
    event.publish()
    db.session.commit()
    url = "https://cdn.example.com/a%20concert.jpg"
    headers = api_token(client, "alice")
    changed = client.put(
        f"/api/v1/events/{event.id}", json={"image_url": f"  {url} "}, headers=headers
    )
    assert changed.status_code == 200, changed.get_json()
    assert client.get(f"/api/v1/catalog/events/{event.id}").get_json()["result"]["image_url"] == url
    cleared = client.put(f"/api/v1/events/{event.id}", json={"image_url": ""}, headers=headers)
    assert cleared.status_code == 200
    db.session.expire_all()
    assert db.session.get(Event, event.id).image_url is None
