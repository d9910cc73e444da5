"""A hold request reads the customer's cart (their live hold for the event) through the index of
live holds by customer and event, also in the plan PostgreSQL keeps for the prepared statement:
that plan read it through ix_hold_status_expires_at too, so in an on-sale each hold request
read every cart of the crowd."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from app.extensions import db
from app.models.base import utcnow
from app.services.purchase import cart
from tests.support.builders import make_event, make_partner
from tests.support.plans import analyze, generic_plan

CROWD, EARLIER = 300, 10


def test_a_cart_is_read_by_its_customer_and_event_in_a_prepared_plan(app: Any) -> None:
    event = make_event(make_partner("Aurora"))
    event.publish()
    db.session.commit()
    now = utcnow()
    # a crowd that has bought before: each fan's earlier holds paid, one cart live
    db.session.execute(
        text(
            "INSERT INTO customer (name, email, created_at) SELECT 'Fan ' || n, "
            "'fan' || n || '@example.com', :now FROM generate_series(1, :crowd) n"
        ),
        {"now": now, "crowd": CROWD},
    )
    db.session.execute(
        text(
            "INSERT INTO hold (customer_id, event_id, status, created_at, expires_at) "
            "SELECT id, :event_id, CASE WHEN n = 0 THEN 'active' ELSE 'converted' END, :now, "
            ":now + interval '10 minutes' FROM customer, generate_series(0, :earlier) n"
        ),
        {"event_id": event.id, "now": now, "earlier": EARLIER},
    )
    db.session.commit()
    analyze("hold")
    customer_id = db.session.scalar(text("SELECT min(id) FROM customer"))
    ids = {"customer_id": customer_id, "event_id": event.id, "now": now}
    plan = generic_plan(cart._CART, ids)
    scans = [line for line in plan.splitlines() if " on hold" in line]
    assert scans, plan
    assert all("ix_hold_live_cart" in line for line in scans), plan
    # and the statement finds that customer's cart
    with db.engine.connect() as conn:
        found = cart.locked(conn, ids)
        conn.rollback()
    assert found is not None
