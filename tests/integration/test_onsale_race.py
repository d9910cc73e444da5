"""A flash crowd on PostgreSQL: 60 real clients on real connections race for the same seats and
for best-available in one section. Every spot is sold at most once, sales stop exactly at
capacity, every charge has its tickets, and nobody gets a 5xx."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from app import sim_acquirer
from app.extensions import db
from app.models import EventSpot, Order, OrderStatus, Payment, PaymentStatus, SpotStatus, Ticket
from app.models.base import utcnow
from tests.support import shop
from tests.support.builders import make_event, make_partner

CLIENTS = 60


@pytest.fixture
def crowd(app):
    event = make_event(make_partner("Arena"), "Flash Sale", rows=("A", "D"), seats=10)
    event.publish()
    db.session.commit()
    clients = shop.crowd(app, CLIENTS, "buyer")
    return {"event": event, "section": event.sections[0], "clients": clients}


def _card_token() -> str:
    """A fresh token per payment: card tokens are single-use."""
    return sim_acquirer.tokenize(
        {"number": "4242424242424242", "exp_month": 12, "exp_year": utcnow().year + 1,
         "cvc": "123", "holder_name": "Buyer"}
    )["token"]  # fmt: skip


def _race(crowd, attempt):
    start = threading.Barrier(len(crowd["clients"]))

    def run(pair):
        start.wait(30)
        return attempt(*pair)

    with ThreadPoolExecutor(len(crowd["clients"])) as pool:
        results = list(pool.map(run, crowd["clients"]))
    db.session.rollback()  # read what the clients committed
    return results


@pytest.mark.concurrency
def test_sixty_clients_racing_for_the_same_two_seats_one_wins(crowd):
    spot_ids = [s.id for s in crowd["section"].spots[:2]]
    event_id = crowd["event"].id

    def attempt(client, headers):
        response = client.post(
            "/api/v1/holds/", json={"event_id": event_id, "spot_ids": spot_ids}, headers=headers
        )
        return response.status_code, response.get_json()

    results = _race(crowd, attempt)
    codes = Counter(code for code, _ in results)
    assert codes[201] == 1, codes
    assert set(codes) <= {201, 409, 503}, codes
    for code, body in results:
        if code == 409:
            assert body["error"] == "spots_unavailable" and body["spots"]
    held = db.session.scalars(select(EventSpot).where(EventSpot.id.in_(spot_ids))).all()
    assert {s.status for s in held} == {SpotStatus.HELD}
    assert len({s.hold_id for s in held}) == 1


@pytest.mark.concurrency
def test_best_available_crowd_sells_exactly_the_capacity_once(crowd):
    event_id, section_id = crowd["event"].id, crowd["section"].id
    tokens = [_card_token() for _ in crowd["clients"]]
    capacity = len(crowd["section"].spots)

    def attempt(client, headers):
        token = tokens[[c for c, _ in crowd["clients"]].index(client)]
        statuses = []
        for _ in range(3):  # a busy answer is retried, as a client would
            hold = client.post(
                "/api/v1/holds/",
                json={"event_id": event_id, "section_id": section_id, "quantity": 2},
                headers=headers,
            )
            statuses.append(hold.status_code)
            if hold.status_code != 503:
                break
        if hold.status_code != 201:
            return statuses
        hold_id = hold.get_json()["result"]["id"]
        paid = client.post(
            f"/api/v1/holds/{hold_id}/checkout",
            json={"card_token": token},
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        return [*statuses, paid.status_code]

    results = _race(crowd, attempt)
    flat = Counter(code for codes in results for code in codes)
    assert not [c for c in flat if c >= 500 and c != 503], flat
    assert all(codes[-1] in (201, 409) for codes in results), results
    assert sum(1 for codes in results if codes[-1] == 201) == capacity // 2

    sold = db.session.scalar(
        select(func.count()).where(EventSpot.section_id == section_id, EventSpot.status == "sold")
    )
    assert sold == capacity
    per_spot = db.session.execute(
        select(Ticket.spot_id, func.count())
        .where(Ticket.status == "valid")
        .group_by(Ticket.spot_id)
    ).all()
    assert len(per_spot) == capacity and {count for _, count in per_spot} == {1}
    for payment in db.session.scalars(select(Payment)):
        assert payment.status == PaymentStatus.CAPTURED
        order = db.session.get(Order, payment.order_id)
        assert order.status == OrderStatus.PAID
        assert len(order.live_tickets) == 2
        assert payment.amount_cents == sum(t.price_cents for t in order.live_tickets)
    assert db.session.scalar(select(func.count()).select_from(Payment)) == capacity // 2
