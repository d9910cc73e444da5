"""Issue 18, point 3 (a PostgreSQL restart mid-sale): while the database cannot be reached, every
request that needs it answers 503 with Retry-After (JSON ``unavailable`` for the API, our error
page for people), never 500, and the same requests succeed once it is back. The app under test
reaches PostgreSQL through a TCP proxy the test cuts (tests/support/pg_proxy.py); the cluster
test (tests/cluster/) restarts a real PostgreSQL under running buyers."""

from __future__ import annotations

from sqlalchemy import text

from app.extensions import db
from tests.support.builders import make_event, make_partner
from tests.support.shop import sign_up


def test_with_the_database_away_the_api_and_pages_answer_503_and_work_again_after(
    client, proxy, proxied
):
    event = make_event(make_partner("Aurora"), rows=("A", "A"), seats=4)
    event.publish()
    db.session.commit()
    buyer = sign_up(client, "away@example.com")
    shop = proxied.test_client()
    hold = {"event_id": event.id, "section_id": event.sections[0].id, "quantity": 1}
    assert shop.get("/api/v1/catalog/events").status_code == 200
    with proxied.app_context():  # the pool holds live connections when the cut comes
        db.session.execute(text("SELECT 1"))
        db.session.remove()

    proxy.cut()
    answers = {
        "catalog": shop.get("/api/v1/catalog/events"),
        "hold": shop.post("/api/v1/holds/", json=hold, headers=buyer),
        "login": shop.post(
            "/api/v1/security/login",
            json={"username": "away@example.com", "password": "x" * 12, "provider": "db"},
        ),
    }
    for name, answer in answers.items():
        assert answer.status_code == 503, (name, answer.get_data(as_text=True)[:300])
        assert answer.get_json()["error"] == "unavailable", name
        assert answer.headers["Retry-After"] == "5", name
    page = shop.get(f"/events/{event.id}")
    assert page.status_code == 503, page.get_data(as_text=True)[:300]
    assert "Try again in a moment" in page.get_data(as_text=True)

    proxy.restore()
    assert shop.get("/api/v1/catalog/events").status_code == 200
    held = shop.post("/api/v1/holds/", json=hold, headers=buyer)
    assert held.status_code == 201, held.get_json()
