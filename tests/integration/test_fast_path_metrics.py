"""The answers the WSGI fast paths give before Flask (app/views/fast_path.py) are counted in the
Prometheus request metrics as the app counts its own: under the route's endpoint, method and
status, so the request rate, the status split and the latency panels see a flash crowd's
refusals and card tokens too."""

from __future__ import annotations

from app.extensions import db
from app.services.purchase import sold_out
from app.views.fast_path import FastPath
from tests.support.builders import make_event, make_partner
from tests.support.clock import Clock
from tests.support.database import statements_during
from tests.support.metrics import sample, scrape
from tests.support.shop import card_fields, sign_up


def fast_paths(app) -> list[FastPath]:
    found = []
    layer = app.wsgi_app
    while isinstance(layer, FastPath) or hasattr(layer, "app"):
        if isinstance(layer, FastPath):
            found.append(layer)
            layer = layer.wsgi_app
        else:
            layer = layer.app
    return found


def counted(client, endpoint: str, status: str) -> tuple[float, float]:
    """(requests counted with this status, of which timed under this endpoint)."""
    body = scrape(client)
    return (
        sample(body, "flask_http_request_total", method="POST", status=status),
        sample(
            body,
            "flask_http_request_duration_seconds_count",
            method="POST",
            endpoint=endpoint,
            status=status,
        ),
    )


def test_each_fast_path_counts_under_the_endpoint_the_app_routes_its_path_to(app):
    paths = fast_paths(app)
    assert {type(path).__name__ for path in paths} == {
        "CheckinFastPath",
        "SoldOutFastPath",
        "TokenFastPath",
    }
    routes = app.url_map.bind("localhost")
    for path in paths:
        assert path.metrics is not None
        assert routes.match(path.path, method="POST")[0] == path.endpoint


def test_a_card_tokenized_before_flask_is_counted_as_a_request(client):
    before = counted(client, "sim_acquirer.create_token", "201")
    response, statements = statements_during(
        lambda: client.post("/sim-acquirer/v1/tokens", json=card_fields())
    )
    assert response.status_code == 201
    assert len(statements) == 1  # the fast path's one INSERT: Flask did not answer it
    after = counted(client, "sim_acquirer.create_token", "201")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_a_sold_out_refusal_from_memory_is_counted_as_the_apps_refusal_is(client, monkeypatch):
    monkeypatch.setattr(sold_out, "_clock", Clock())
    event = make_event(make_partner("Aurora"), rows=("A", "A"), seats=1)
    event.publish()
    db.session.commit()
    body = {"event_id": event.id, "section_id": event.sections[0].id, "quantity": 1}
    buyers = [sign_up(client, f"{name}@example.com") for name in ("ana", "bia", "cid")]
    assert client.post("/api/v1/holds/", json=body, headers=buyers[0]).status_code == 201
    before = counted(client, "HoldApi.post", "409")
    assert client.post("/api/v1/holds/", json=body, headers=buyers[1]).status_code == 409
    refused, statements = statements_during(
        lambda: client.post("/api/v1/holds/", json=body, headers=buyers[2])
    )
    assert refused.status_code == 409 and statements == []  # from memory, before Flask
    after = counted(client, "HoldApi.post", "409")
    assert (after[0] - before[0], after[1] - before[1]) == (2, 2)


def test_what_the_fast_path_leaves_to_the_app_is_counted_once(client):
    before = counted(client, "sim_acquirer.create_token", "422")
    response = client.post("/sim-acquirer/v1/tokens", json=card_fields(cvc="12"))
    assert response.status_code == 422
    after = counted(client, "sim_acquirer.create_token", "422")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
