"""Malformed ids, bodies and query strings answer 4xx with a reason, never 500.

Found by fuzzing the API with schemathesis and by asking every route with bad ids: on
PostgreSQL an id past 2**31 - 1 was "integer out of range" and a text id "invalid input
syntax", both 500; FAB's action and download routes trusted their names.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import re

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Customer, Event, Hold
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


# Bodies no JSON route may answer with a 5xx or act on, whoever sends them (found by a hostile
# probe): nesting past the parser's recursion, bodies that are not an object, lone surrogates
# (valid JSON, no character: PostgreSQL and Redis refuse them) in values and keys, and a
# body past every route's size limit.
DEEP = "[" * 3000  # past the parser's recursion, within every route's size limit
SURROGATE_FIELDS = (
    *("name", "card_token", "holder_name", "number", "code", "gate", "nonce", "email"),
    *("password", "username", "event_id", "scans"),
)
HOSTILE_BODIES = {
    "nested 50,000 deep": ("[" * 50_000, (400, 413)),
    "nested 3,000 deep": (DEEP, (400,)),
    # Small enough for the fast paths in front of the app to read it themselves.
    "nested 1,000 deep": ("[" * 1000, (400,)),
    # 5 bytes a level: past the 4 KB routes' limit before it is past the parser's.
    "nested objects": ('{"a":' * 3000 + "1" + "}" * 3000, (400, 413)),
    "lone surrogates": (
        "{" + ", ".join(f'"{name}": "\\ud800"' for name in SURROGATE_FIELDS) + "}",
        (400,),
    ),
    "a lone surrogate as a key": ('{"\\udfff": 1}', (400,)),
    "a lone surrogate in a list": ('{"scans": [{"code": "x\\udc00"}], "spot_ids": ["\\ud800"]}',
                                   (400,)),
    "10 MB": ('{"name": "' + "x" * 10_000_000 + '"}', (413,)),
}  # fmt: skip
NOT_AN_OBJECT = ["[1]", '"x"', "null", "1"]


def _json_routes(app, ids):
    """(method, path) of every route taking a JSON body: the APIs' and the acquirer's, each
    argument an existing row's id so that the view gets as far as the body."""
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/", "/sim-acquirer/")):
            continue
        path = rule.rule
        for name in rule.arguments:
            path = re.sub(rf"<(?:[^<>]+:)?{name}>", str(ids.get(name, ids["pk"])), path)
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}):
            yield method, path


@pytest.fixture
def callers(client, two_partners, on_sale):
    """Each kind of caller's headers: anonymous, admin, partner, gate staff, a gate device, a
    customer (with a hold)."""
    from tests.support.gate import device, open_event

    customer = sign_up(client)
    hold = client.post(
        "/api/v1/holds/",
        json={"event_id": on_sale.id, "section_id": on_sale.sections[0].id, "quantity": 1},
        headers=customer,
    ).get_json()["result"]
    door = open_event(two_partners["a"], "Door")
    return {
        "anonymous": {},
        "admin": api_token(client, "root"),
        "partner": api_token(client, "alice"),
        "gate staff": api_token(client, "gina"),
        "gate device": device(two_partners["a"], door),
        "customer": customer,
        "ids": {"pk": two_partners["event_a"].id, "event_id": on_sale.id, "hold_id": hold["id"]},
    }


def test_no_json_route_takes_a_hostile_body_from_anyone(app, client, callers):
    ids = callers.pop("ids")
    routes = list(_json_routes(app, ids))
    assert len(routes) > 20
    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer as in production: a crash is a 500
    failures = []
    try:
        for who, headers in callers.items():
            for method, path in routes:
                for shape, (body, wanted) in HOSTILE_BODIES.items():
                    response = client.open(
                        path,
                        method=method,
                        data=body,
                        headers={**headers, "Content-Type": "application/json"},
                    )
                    if response.status_code not in wanted or not response.is_json:
                        failures.append(f"{who} {method} {path} {shape}: {response.status_code}")
                for body in NOT_AN_OBJECT if method != "DELETE" else ():
                    response = client.open(
                        path,
                        method=method,
                        data=body,
                        headers={**headers, "Content-Type": "application/json"},
                    )
                    if response.status_code >= 500:  # routes without a body ignore it
                        failures.append(f"{who} {method} {path} {body}: {response.status_code}")
    finally:
        app.config["PROPAGATE_EXCEPTIONS"] = None
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("body", NOT_AN_OBJECT)
@pytest.mark.parametrize("resource", ["events", "sections", "spots"])
def test_the_partner_api_answers_400_to_a_body_that_is_not_an_object(
    client, two_partners, resource, body
):
    event = two_partners["event_a"]
    pk = {"events": event.id, "sections": event.sections[0].id}.get(resource)
    pk = pk or event.sections[0].spots[0].id
    headers = {**api_token(client, "alice"), "Content-Type": "application/json"}
    response = client.put(f"/api/v1/{resource}/{pk}", data=body, headers=headers)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "JSON object" in response.get_json()["message"]


def _surrogate(response, field):
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"] == "invalid_json"
    assert response.get_json()["field"] == field
    assert "lone surrogate" in response.get_json()["message"]


RAW = {"Content-Type": "application/json"}


def test_a_lone_surrogate_is_refused_naming_its_field(client, two_partners, on_sale):
    event = two_partners["event_a"]
    alice = api_token(client, "alice")
    name = client.put(f"/api/v1/events/{event.id}", data='{"name": "\\ud800"}',
                      headers={**alice, **RAW})  # fmt: skip
    _surrogate(name, "name")
    db.session.expire_all()
    assert db.session.get(Event, event.id).name == "A Concert"
    card = (
        '{"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123",'
        ' "holder_name": "Ana \\udc00"}'
    )
    _surrogate(client.post("/sim-acquirer/v1/tokens", data=card, headers=RAW), "holder_name")
    customer = sign_up(client)
    hold = client.post(
        "/api/v1/holds/",
        json={"event_id": on_sale.id, "section_id": on_sale.sections[0].id, "quantity": 1},
        headers=customer,
    ).get_json()["result"]
    paid = client.post(
        f"/api/v1/holds/{hold['id']}/checkout",
        data='{"card_token": "tok_\\ud800"}',
        headers={**customer, **RAW, "Idempotency-Key": "k-0123456789"},
    )
    _surrogate(paid, "card_token")
    valid_pair = client.put(
        f"/api/v1/events/{event.id}", data='{"name": "Samba \\ud83c\\udfb6"}',
        headers={**alice, **RAW},
    )  # fmt: skip
    assert valid_pair.status_code == 200, valid_pair.get_json()
    db.session.expire_all()
    assert db.session.get(Event, event.id).name == "Samba \U0001f3b6"


@pytest.mark.parametrize("field", ["code", "gate", "nonce"])
def test_a_scan_with_a_lone_surrogate_is_refused_on_either_store(
    app, client, store, two_partners, field
):
    """The device's path in front of the app crashed on it with a bare 500 (Redis cannot
    encode it)."""
    from tests.support.gate import device, logged, open_event

    app.config["PROPAGATE_EXCEPTIONS"] = False
    try:
        auth = device(two_partners["a"], open_event(two_partners["a"], "Door"))
        body = {"code": '"x"', "gate": '"North"', "nonce": '"n-0123456789"'}
        body[field] = '"\\ud800"'
        raw = "{" + ", ".join(f'"{k}": {v}' for k, v in body.items()) + "}"
        response = client.post("/api/v1/checkin/scan", data=raw, headers={**auth, **RAW})
    finally:
        app.config["PROPAGATE_EXCEPTIONS"] = None
    _surrogate(response, field)
    assert logged() == []


def test_deeply_nested_json_is_refused_before_any_route_reads_it(client, two_partners):
    headers = {**api_token(client, "alice"), **RAW}
    response = client.post("/api/v1/events/", data=DEEP, headers=headers)
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "invalid_json",
        "message": "The JSON body nests too deeply.",
    }
    token = client.post("/sim-acquirer/v1/tokens", data=DEEP, headers=RAW)
    assert token.status_code == 400 and token.get_json()["error"] == "invalid_json"


def test_a_nul_in_a_header_is_refused(client, on_sale):
    customer = sign_up(client)
    hold = client.post(
        "/api/v1/holds/",
        json={"event_id": on_sale.id, "section_id": on_sale.sections[0].id, "quantity": 1},
        headers=customer,
    ).get_json()["result"]
    response = client.post(
        f"/api/v1/holds/{hold['id']}/checkout",
        json={"card_token": "tok_x"},
        headers={**customer, "Idempotency-Key": "key-\x00-0123456789"},
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "NUL" in response.get_json()["message"]


def _padded(body, size=10_000_000):
    """``body`` as JSON of exactly ``size`` bytes (a padding field)."""
    head = json.dumps({**body, "padding": ""})
    return head[:-2] + "x" * (size - len(head)) + '"}'


def test_a_10_mb_body_is_refused_before_anything_reads_it(client, on_sale):
    customer = sign_up(client)
    wanted = {"event_id": on_sale.id, "section_id": on_sale.sections[0].id, "quantity": 1}
    hold = client.post("/api/v1/holds/", data=_padded(wanted), headers={**customer, **RAW})
    assert hold.status_code == 413, hold.get_data(as_text=True)[:300]
    assert hold.get_json()["error"] == "request_entity_too_large"
    assert db.session.scalar(select(func.count()).select_from(Hold)) == 0
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123",
            "holder_name": "Ana"}  # fmt: skip
    token = client.post("/sim-acquirer/v1/tokens", data=_padded(card), headers=RAW)
    assert token.status_code == 413 and token.is_json
    signup = {"name": "Bia", "email": "bia@example.com", "password": "Secret-1234"}
    account = client.post("/api/v1/customers/", data=_padded(signup), headers=RAW)
    assert account.status_code == 413
    assert db.session.scalar(select(func.count()).select_from(Customer)) == 1  # Ana only


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/api/v1/checkin/scan", 4 * 1024),
        ("/api/v1/checkin/offline-scans", 2 * 1024 * 1024),
        ("/api/v1/holds/", 4 * 1024),
        ("/api/v1/customers/", 4 * 1024),
        ("/api/v1/security/login", 4 * 1024),
        ("/sim-acquirer/v1/tokens", 4 * 1024),
        ("/api/v1/events/", 64 * 1024),
        ("/signup", 16 * 1024),
    ],
)
def test_each_route_family_reads_up_to_its_limit(client, path, limit):
    at_limit = client.post(path, data=_padded({}, limit), headers=RAW)
    assert at_limit.status_code != 413
    past = client.post(path, data=_padded({}, limit + 1), headers=RAW)
    assert past.status_code == 413


def test_a_body_without_a_length_is_cut_at_the_limit(client):
    """A chunked body (no Content-Length) passes the fast paths' length check: the app reads
    it up to the route's limit, then answers 413."""
    for path in ("/api/v1/checkin/scan", "/api/v1/holds/"):
        response = client.post(
            path,
            input_stream=io.BytesIO(_padded({}, 100_000).encode()),
            headers={**RAW, "Authorization": "Bearer x", "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert response.status_code == 413, (path, response.get_data(as_text=True)[:200])
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123",
            "holder_name": "Ana"}  # fmt: skip
    whole = client.post(
        "/sim-acquirer/v1/tokens",
        input_stream=io.BytesIO(_padded(card, 4 * 1024).encode()),
        headers={**RAW, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert whole.status_code == 201, whole.get_json()  # up to the limit, read whole


@contextlib.contextmanager
def csrf_checked(app):
    """The CSRF check on, as in production (logins before it: the login form needs a token)."""
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        yield
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


@pytest.mark.parametrize(
    "authorization", ["x", "", "Basic YWxpY2U6VGVzdC0xMjM0", "Bearer not-a-token", "Bearer "]
)
def test_only_a_bearer_token_that_verifies_stands_in_for_the_csrf_token(
    app, client, two_partners, authorization
):
    """Any Authorization header skipped the check, and FAB then acted as the cookie's user: a
    cookie-authenticated PUT with "Authorization: x" renamed the event."""
    event = two_partners["event_a"]
    login(client, "alice")
    with csrf_checked(app):
        response = client.put(
            f"/api/v1/events/{event.id}",
            json={"name": "Renamed"},
            headers={"Authorization": authorization},
        )
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    db.session.expire_all()
    assert db.session.get(Event, event.id).name == "A Concert"


def test_a_bearer_token_of_another_user_does_not_stand_in_for_it(app, client, two_partners):
    event = two_partners["event_a"]
    bobs = api_token(client, "bob")
    alices = api_token(client, "alice")
    login(client, "alice")
    with csrf_checked(app):
        refused = client.put(f"/api/v1/events/{event.id}", json={"name": "X"}, headers=bobs)
        assert refused.status_code == 400
        done = client.put(f"/api/v1/events/{event.id}", json={"name": "X"}, headers=alices)
        assert done.status_code == 200, done.get_json()


def test_a_gate_device_scans_in_a_browser_with_a_dashboard_session(app, client, two_partners):
    """The check-in API reads no session: a device token is all it takes, cookie or not."""
    from tests.support.gate import device, open_event, scan

    auth = device(two_partners["a"], open_event(two_partners["a"], "Door"))
    login(client, "gina")
    with csrf_checked(app):
        assert scan(client, auth, "not-a-code").status_code == 200


# Digits of other scripts: full-width (U+FF10...) and Arabic-Indic (U+0660...).
FULL_WIDTH = str.maketrans("0123456789", "".join(map(chr, range(0xFF10, 0xFF1A))))
ARABIC_INDIC = str.maketrans("0123456789", "".join(map(chr, range(0x0660, 0x066A))))


@pytest.mark.parametrize("digits", [FULL_WIDTH, ARABIC_INDIC])
@pytest.mark.parametrize("path", ["/events/{}", "/api/v1/catalog/events/{}"])
def test_an_id_written_in_other_digits_than_ascii_names_nothing(client, on_sale, path, digits):
    """Python's \\d and int() read "\\uff11" as 1: /events/\\uff11 showed event 1."""
    assert client.get(path.format(on_sale.id)).status_code == 200
    assert client.get(path.format(str(on_sale.id).translate(digits))).status_code == 404
