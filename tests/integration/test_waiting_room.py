"""The waiting room of a high-demand on-sale: first come, first served at the event's rate; the
hold is the gate; a purchase or the clock ends a turn."""

from __future__ import annotations

import datetime as dt
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import Customer, WaitingEntry
from app.models.base import utcnow
from app.services import customers, waiting_room
from tests.support.builders import api_token, make_event, make_partner, make_user
from tests.support.pages import alerts, page_sign_up, path_of, text
from tests.support.shop import card_token, pay, sign_up

RATE = 60  # buyers let in per minute: one a second


@pytest.fixture
def queued():
    """A published event with a waiting room letting in one buyer a second."""
    event = make_event(make_partner("Arena"), "Big Night", rows=("A", "C"), seats=10)
    event.waiting_room_per_minute = RATE
    event.publish()
    db.session.commit()
    return event


@pytest.fixture
def burst(app):
    before = app.config["WAITING_ROOM_BURST"]
    app.config["WAITING_ROOM_BURST"] = 2
    yield 2
    app.config["WAITING_ROOM_BURST"] = before


def _customers(count: int, first: int = 0) -> list[int]:
    sm = current_app.appbuilder.sm
    return [
        customers.sign_up(db.session, sm, f"Fan {n}", f"fan{n}@example.com", "Ingresso-Azul-77").id
        for n in range(first, first + count)
    ]


def _admit(event_id: int, customer_email: str, at: dt.datetime) -> None:
    """Move a customer's turn (the test's clock)."""
    customer = db.session.scalar(select(Customer).where(Customer.email == customer_email))
    entry = db.session.get(WaitingEntry, (event_id, customer.id))
    entry.admit_at = at
    db.session.commit()


def _hold(client, headers, event, count=2):
    spot_ids = [s.id for s in event.sections[0].spots[:count]]
    return client.post(
        "/api/v1/holds/", json={"event_id": event.id, "spot_ids": spot_ids}, headers=headers
    )


def test_buyers_come_in_first_come_first_served_at_the_events_rate(queued, burst):
    now = utcnow().replace(microsecond=0)
    fans = _customers(6)
    turns = [waiting_room.join(db.session, fan, queued.id, now) for fan in fans]
    # A burst of two come in at once, then one a second, in joining order.
    seconds = [(t.admit_at - now).total_seconds() for t in turns]
    assert seconds == [0, 0, 1, 2, 3, 4]
    assert [t.status for t in turns] == ["admitted"] * 2 + ["waiting"] * 4
    assert [t.ahead(now) for t in turns] == [0, 0, 1, 2, 3, 4]
    assert turns[-1].retry_after(now) == 4
    # Asking again keeps one's place and takes nobody else's.
    again = waiting_room.join(db.session, fans[4], queued.id, now + dt.timedelta(seconds=1))
    assert again.admit_at == turns[4].admit_at and again.status == "waiting"
    late = waiting_room.join(db.session, _customers(1, first=6)[0], queued.id, now)
    assert late.admit_at - now == dt.timedelta(seconds=5)
    # After a quiet spell the line is empty: a newcomer comes straight in.
    later = now + dt.timedelta(minutes=11)
    first = waiting_room.join(db.session, _customers(1, first=7)[0], queued.id, later)
    assert first.status == "admitted" and first.admit_at == later
    # Turns end by the clock (ten minutes by default).
    assert waiting_room.status(db.session, fans[5], queued.id, later).status == "not_in_line"


def test_the_hold_is_the_gate_and_a_purchase_ends_the_turn(client, queued):
    headers = sign_up(client)
    refused = _hold(client, headers, queued)
    assert refused.status_code == 403
    assert refused.get_json()["error"] == "waiting_room"

    joined = client.post(f"/api/v1/queue/{queued.id}", headers=headers)
    assert joined.status_code == 200
    assert joined.get_json()["result"]["status"] == "admitted"  # an empty line: straight in
    hold = _hold(client, headers, queued)
    assert hold.status_code == 201, hold.get_json()
    paid = pay(client, headers, hold.get_json()["result"]["id"], card_token(client))
    assert paid.status_code == 201, paid.get_json()

    status = client.get(f"/api/v1/queue/{queued.id}", headers=headers).get_json()["result"]
    assert status["status"] == "not_in_line"
    again = _hold(client, headers, queued, count=4)
    assert again.status_code == 403 and again.get_json()["error"] == "waiting_room"


def test_a_buyer_waiting_in_line_is_told_when_to_come_back(client, queued):
    headers = sign_up(client)
    client.post(f"/api/v1/queue/{queued.id}", headers=headers)
    _admit(queued.id, "ana@example.com", utcnow() + dt.timedelta(seconds=42))

    status = client.get(f"/api/v1/queue/{queued.id}", headers=headers)
    body = status.get_json()["result"]
    assert body["status"] == "waiting" and body["waiting_room"] is True
    assert 40_000 < body["wait_ms"] <= 42_000 and body["ahead"] in (41, 42)
    assert 40 <= int(status.headers["Retry-After"]) <= 42
    refused = _hold(client, headers, queued)
    assert refused.status_code == 403
    assert 40 <= refused.get_json()["retry_after"] <= 42

    _admit(queued.id, "ana@example.com", utcnow() - dt.timedelta(seconds=1))
    assert _hold(client, headers, queued).status_code == 201


def test_a_turn_not_used_in_time_ends_and_joining_again_goes_to_the_back(client, queued):
    headers = sign_up(client)
    client.post(f"/api/v1/queue/{queued.id}", headers=headers)
    turn = current_app.config["WAITING_ROOM_TURN_MINUTES"]
    _admit(queued.id, "ana@example.com", utcnow() - dt.timedelta(minutes=turn, seconds=1))
    assert _hold(client, headers, queued).status_code == 403

    rejoined = client.post(f"/api/v1/queue/{queued.id}", headers=headers).get_json()["result"]
    assert rejoined["status"] == "admitted"
    admit_at = dt.datetime.fromisoformat(rejoined["admit_at"])  # with its offset (UTC)
    assert admit_at.utcoffset() == dt.timedelta(0)
    assert admit_at.replace(tzinfo=None) > utcnow() - dt.timedelta(seconds=5)


def test_leaving_the_line_gives_the_place_up(client, queued):
    headers = sign_up(client)
    client.post(f"/api/v1/queue/{queued.id}", headers=headers)
    left = client.delete(f"/api/v1/queue/{queued.id}", headers=headers)
    assert left.status_code == 200 and left.get_json()["result"]["status"] == "not_in_line"
    assert _hold(client, headers, queued).status_code == 403


def test_an_event_without_a_waiting_room_is_open(client):
    event = make_event(make_partner("Club"), "Small Gig")
    event.publish()
    db.session.commit()
    headers = sign_up(client)
    body = client.post(f"/api/v1/queue/{event.id}", headers=headers).get_json()["result"]
    assert body["status"] == "open" and body["waiting_room"] is False
    assert _hold(client, headers, event).status_code == 201
    assert db.session.scalars(select(WaitingEntry)).all() == []


def test_the_line_forms_before_the_sales_open(queued):
    opening = utcnow().replace(microsecond=0) + dt.timedelta(hours=1)
    queued.sales_start = opening
    db.session.commit()
    fan = _customers(1)[0]
    turn = waiting_room.join(db.session, fan, queued.id)
    assert turn.status == "waiting" and turn.admit_at == opening


def test_the_line_refuses_what_is_not_on_sale(client, queued):
    headers = sign_up(client)
    draft = make_event(make_partner("Draft Co"), "Not Yet")
    db.session.commit()
    assert client.post(f"/api/v1/queue/{draft.id}", headers=headers).status_code == 404
    assert client.post("/api/v1/queue/999999", headers=headers).status_code == 404
    queued.cancel("storm")
    db.session.commit()
    closed = client.post(f"/api/v1/queue/{queued.id}", headers=headers)
    assert closed.status_code == 409 and closed.get_json()["error"] == "conflict"
    assert client.post(f"/api/v1/queue/{queued.id}").status_code == 401


def test_the_partner_sets_the_rate_and_a_bad_one_names_the_field(client, queued):
    make_user("organiser", "Partner", queued.partner)
    db.session.commit()
    headers = api_token(client, "organiser")
    for bad in (0, -5):
        response = client.put(
            f"/api/v1/events/{queued.id}", json={"waiting_room_per_minute": bad}, headers=headers
        )
        assert response.status_code == 422, response.get_json()
        assert "waiting_room_per_minute" in str(response.get_json())
    response = client.put(
        f"/api/v1/events/{queued.id}", json={"waiting_room_per_minute": 600}, headers=headers
    )
    assert response.status_code == 200, response.get_json()
    db.session.expire_all()
    assert queued.waiting_room_per_minute == 600


@pytest.mark.concurrency
def test_a_crowd_joining_at_once_gets_one_slot_each(app, queued, burst):
    """Forty customers join at the same moment on real connections: each gets a place of
    their own, one interval apart after the burst: a place is taken in one statement, and
    every slot is given once."""
    fans = _customers(40)
    event_id = queued.id
    start = threading.Barrier(len(fans))

    def join(customer_id: int) -> dt.datetime:
        with app.app_context():
            start.wait(30)
            turn = waiting_room.join(db.session, customer_id, event_id)
            db.session.remove()
            return turn.admit_at

    with ThreadPoolExecutor(len(fans)) as pool:
        admitted = sorted(pool.map(join, fans))
    db.session.rollback()
    step = dt.timedelta(seconds=60 / RATE)
    # The burst at once, then one per interval.
    assert sum(1 for at in admitted if at < admitted[0] + step) == burst
    gaps = [b - a for a, b in zip(admitted[burst:], admitted[burst + 1 :], strict=False)]
    assert gaps == [step] * (len(fans) - burst - 1)
    entries = db.session.scalars(select(WaitingEntry).where(WaitingEntry.event_id == event_id))
    assert sorted(e.customer_id for e in entries) == sorted(fans)


# ---------------------------------------------------------------------------------------------
# The pages, without JavaScript


def test_the_event_page_sends_a_buyer_through_the_line_to_the_seats(client, queued):
    page_sign_up(client)
    page = text(client.get(f"/events/{queued.id}"))
    assert "Join the line" in page and 'name="quantity"' not in page
    refused = client.post(
        f"/events/{queued.id}/hold", data={"section_id": queued.sections[0].id, "quantity": 2}
    )
    assert path_of(refused) == f"/events/{queued.id}"
    assert "join the line" in text(client.get(path_of(refused)))

    joined = client.post(f"/events/{queued.id}/queue")  # an empty line: straight in
    assert path_of(joined) == f"/events/{queued.id}"
    page = text(client.get(f"/events/{queued.id}"))
    assert "It is your turn" in page and 'name="quantity"' in page
    held = client.post(
        f"/events/{queued.id}/hold", data={"section_id": queued.sections[0].id, "quantity": 2}
    )
    assert path_of(held).startswith("/holds/")


def test_the_waiting_page_shows_the_place_and_moves_on_by_itself(client, queued):
    page_sign_up(client)
    client.post(f"/events/{queued.id}/queue")
    _admit(queued.id, "ana@example.com", utcnow() + dt.timedelta(seconds=75))
    page = text(client.get(f"/events/{queued.id}/queue"))
    assert "You are in line" in page
    assert re.search(r'id="ahead">7[45]<', page), page
    assert '<meta http-equiv="refresh" content="30">' in page  # at least every half minute
    assert "waiting room" in text(client.get(f"/events/{queued.id}")).lower()
    assert 'name="quantity"' not in text(client.get(f"/events/{queued.id}"))

    _admit(queued.id, "ana@example.com", utcnow() - dt.timedelta(seconds=1))
    admitted = client.get(f"/events/{queued.id}/queue")
    assert path_of(admitted) == f"/events/{queued.id}"
    assert "It is your turn" in text(client.get(path_of(admitted)))


def test_a_visitor_is_asked_to_log_in_before_joining(client, queued):
    response = client.post(f"/events/{queued.id}/queue")
    assert response.status_code == 302 and "/login" in path_of(response)


def test_paying_for_a_hold_of_an_earlier_turn_keeps_the_place_taken_since(client, queued):
    """A hold lasts as long as a turn: its buyer may pay after the turn ran out and they joined
    again. The purchase ends the turn the hold was made in, not the new place."""
    headers = sign_up(client)
    client.post(f"/api/v1/queue/{queued.id}", headers=headers)
    hold = _hold(client, headers, queued).get_json()["result"]
    turn = current_app.config["WAITING_ROOM_TURN_MINUTES"]
    _admit(queued.id, "ana@example.com", utcnow() - dt.timedelta(minutes=turn, seconds=1))
    rejoined = client.post(f"/api/v1/queue/{queued.id}", headers=headers).get_json()["result"]
    assert rejoined["status"] == "admitted"

    assert pay(client, headers, hold["id"], card_token(client)).status_code == 201
    after = client.get(f"/api/v1/queue/{queued.id}", headers=headers).get_json()["result"]
    assert after["status"] == "admitted" and after["admit_at"] == rejoined["admit_at"]


def test_the_line_before_the_opening_is_on_the_event_page_and_only_for_a_sale_to_come(
    client, queued
):
    queued.sales_start = utcnow() + dt.timedelta(hours=2)
    db.session.commit()
    page_sign_up(client)
    page = text(client.get(f"/events/{queued.id}"))
    assert "the line is open now" in page and "Join the line" in page
    assert 'name="quantity"' not in page

    queued.partner.status = "suspended"
    db.session.commit()
    headers = sign_up(client, email="bia@example.com")
    refused = client.post(f"/api/v1/queue/{queued.id}", headers=headers)
    assert refused.status_code == 409
    assert "Join the line" not in text(client.get(f"/events/{queued.id}"))


def test_the_waiting_page_of_a_cancelled_event_says_so(client, queued):
    page_sign_up(client)
    client.post(f"/events/{queued.id}/queue")
    _admit(queued.id, "ana@example.com", utcnow() + dt.timedelta(seconds=60))
    queued.cancel("storm")
    db.session.commit()
    response = client.get(f"/events/{queued.id}/queue")
    assert path_of(response) == f"/events/{queued.id}"
    assert "Tickets for Big Night are not on sale." in alerts(client.get(path_of(response)))
