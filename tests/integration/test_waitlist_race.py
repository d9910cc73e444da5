"""The waiting list under a race, on PostgreSQL with real connections: spots come back (holds
expiring and swept, paid orders refunded) while ordinary buyers hammer the same section and two
offer workers run at once. Every spot that comes back goes to the waiting entries in order; no
ordinary buyer gets one while anyone waits; no spot is held twice; no entry is offered twice."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask, current_app
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    EventSpot,
    Hold,
    HoldStatus,
    OutboxMail,
    SpotStatus,
    WaitlistEntry,
    WaitlistStatus,
)
from app.models.base import utcnow
from app.services import customers, refunds, waitlist
from app.services.payments import gateway
from app.services.purchase import sold_out
from app.services.purchase.release import release_expired_holds
from app.services.scoping import SYSTEM
from tests.support.builders import make_event, make_partner
from tests.support.shop import CUSTOMER_PASSWORD, buy, expire

BUYERS = 12
# What the line asks for, in order of joining: 18 of the 20 spots that come back, then 3 more
# than are left (strict order: that last entry waits, and the 2 spots left wait with it).
QUANTITIES = [2, 1, 3, 2, 1, 2, 3, 1, 2, 1, 3]


def _token(client, email: str) -> dict[str, str]:
    jwt = client.post(
        "/api/v1/security/login",
        json={"username": email, "password": CUSTOMER_PASSWORD, "provider": "db"},
    ).get_json()["access_token"]
    return {"Authorization": f"Bearer {jwt}"}


def _new_customer(app: Flask) -> tuple[int, dict[str, str], object]:
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    customer = customers.sign_up(
        db.session, current_app.appbuilder.sm, "Fan", email, CUSTOMER_PASSWORD
    )
    client = app.test_client()
    return customer.id, _token(client, email), client


@pytest.mark.concurrency
def test_spots_that_come_back_go_to_the_line_in_order_under_a_race(app, client):
    """(``client``: every test client's request runs in an app context of its own.)"""
    sold_out.forget()
    event = make_event(make_partner("Arena"), "Final", rows=("A", "B"), seats=10)
    event.publish()
    db.session.commit()
    section = event.sections[0]
    spots = section.spots
    # 4 spots sold through the purchase path (2 orders, refunded during the race) and 16 held
    # by 8 customers whose holds expire during the race: the section is sold out.
    shop = app.test_client()
    orders = [buy(shop, event, 2), buy(shop, event, 2)]
    holds = []
    db.session.expire_all()
    for _ in range(8):
        _, headers, holder = _new_customer(app)
        free = [s.id for s in spots if s.status == SpotStatus.AVAILABLE][:2]
        answer = holder.post(
            "/api/v1/holds/", json={"event_id": event.id, "spot_ids": free}, headers=headers
        )
        assert answer.status_code == 201, answer.get_json()
        holds.append(answer.get_json()["result"]["id"])
        db.session.expire_all()
    line = []
    for quantity in QUANTITIES:
        customer_id, headers, fan = _new_customer(app)
        joined = fan.post(
            f"/api/v1/waitlist/{event.id}", json={"quantity": quantity}, headers=headers
        )
        assert joined.status_code == 201, joined.get_json()
        line.append((joined.get_json()["result"]["id"], customer_id))
        time.sleep(0.002)  # distinct joining times
    buyers = [_new_customer(app) for _ in range(BUYERS)]
    entry_customers = {customer_id for _, customer_id in line}
    for hold_id in holds:
        expire(hold_id)  # their spots are free from now on, before any sweep

    stop = threading.Event()
    start = threading.Barrier(BUYERS + 5)
    best = {"event_id": event.id, "section_id": section.id, "quantity": 1}
    spot_ids = [s.id for s in spots]

    def ordinary_buyer(n: int) -> Counter[int]:
        _, headers, buyer = buyers[n]
        answers: Counter[int] = Counter()
        start.wait(30)
        while not stop.is_set():
            body = best if n % 2 else {"event_id": event.id, "spot_ids": [spot_ids[n % 20]]}
            answers[buyer.post("/api/v1/holds/", json=body, headers=headers).status_code] += 1
        return answers

    def in_app(work) -> None:
        with app.app_context():
            start.wait(30)
            work()

    def sweeper() -> None:
        while not stop.is_set():
            release_expired_holds(db.session)
            time.sleep(0.01)

    def refunder() -> None:
        for order in orders:
            time.sleep(0.05)
            refunds.refund_order(db.session, gateway(), order["id"], SYSTEM)

    def offer_worker() -> None:
        while not stop.is_set():
            waitlist.make_offers(db.session, event.id)
            time.sleep(0.005)

    with ThreadPoolExecutor(BUYERS + 5) as pool:
        bought = [pool.submit(ordinary_buyer, n) for n in range(BUYERS)]
        chores = [
            pool.submit(in_app, work)
            for work in (sweeper, refunder, offer_worker, offer_worker, sweeper)
        ]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.2)
            with app.app_context():
                offered = db.session.scalar(
                    select(func.count()).where(WaitlistEntry.status == WaitlistStatus.OFFERED)
                )
            if offered == len(QUANTITIES) - 1 and all(c.done() for c in chores[1:2]):
                time.sleep(0.5)  # the buyers keep trying a while after the line was served
                break
        stop.set()
        answers = sum((b.result(60) for b in bought), Counter())
        for chore in chores:
            chore.result(60)

    db.session.rollback()
    assert set(answers) <= {201, 409, 503}, answers  # never a 5xx but "busy"
    entries = {e.id: e for e in db.session.scalars(select(WaitlistEntry))}
    served, last = line[:-1], line[-1]
    # Everyone in line but the last was offered their quantity, in order of joining (hold ids
    # are given out in the order the holds were written), each once, with one mail.
    offer_holds = []
    for (entry_id, customer_id), quantity in zip(served, QUANTITIES, strict=False):
        entry = entries[entry_id]
        assert entry.status == WaitlistStatus.OFFERED, (entry_id, entry.status)
        hold = db.session.get(Hold, entry.hold_id)
        assert hold.customer_id == customer_id and hold.status == HoldStatus.ACTIVE
        assert len(hold.spots) == quantity
        offer_holds.append(hold.id)
        mails = db.session.scalars(select(OutboxMail).where(OutboxMail.kind == "waitlist_offer"))
        assert sum(1 for m in mails if m.params["entry_id"] == entry_id) == 1
    assert offer_holds == sorted(offer_holds)
    assert entries[last[0]].status == WaitlistStatus.WAITING  # wants 3, 2 are left
    # Each entry's customer has exactly the offered hold: nothing offered twice.
    per_customer = Counter(
        db.session.scalars(select(Hold.customer_id).where(Hold.customer_id.in_(entry_customers)))
    )
    assert all(count == 1 for count in per_customer.values()), per_customer
    assert sum(per_customer.values()) == len(served)
    # No ordinary buyer holds a spot: someone waited all along (the last entry still does).
    buyer_ids = [customer_id for customer_id, _, _ in buyers]
    assert answers[201] == 0, answers
    assert db.session.scalar(select(func.count()).where(Hold.customer_id.in_(buyer_ids))) == 0
    # No spot is held twice: every spot is held by one live hold, or free (the 2 left).
    live = db.session.scalars(
        select(EventSpot).where(EventSpot.section_id == section.id, EventSpot.status == "held")
    ).all()
    assert all(s.held_until > utcnow() for s in live)
    assert len(live) == sum(QUANTITIES[:-1])
    assert sorted(Counter(s.hold_id for s in live).values()) == sorted(QUANTITIES[:-1])
    free = db.session.scalar(
        select(func.count()).where(
            EventSpot.section_id == section.id, EventSpot.status == SpotStatus.AVAILABLE
        )
    )
    assert free == 20 - sum(QUANTITIES[:-1])
