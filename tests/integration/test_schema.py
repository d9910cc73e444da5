"""Alembic owns the schema, and the database itself refuses rows that break the invariants."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, text
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Customer, EventSpot, Hold, Order, Ticket
from app.models.base import alembic_include_object, utcnow
from tests.support.builders import make_event, make_partner


def test_migrations_create_every_table_fab_ones_included():
    tables = set(inspect(db.engine).get_table_names())
    assert {"ab_user", "ab_role", "ab_permission_view", "alembic_version"} <= tables
    assert {"partner", "event", "event_section", "event_spot", "hold", "order", "ticket"} <= tables
    assert {"payment", "checkin", "customer"} <= tables


def test_models_and_migrations_agree():
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": alembic_include_object}
        )
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def _spot(event, index=0):
    return event.sections[0].spots[index]


def _order_with_ticket(event, spot, status="valid"):
    customer = db.session.query(Customer).first()
    if customer is None:
        customer = Customer(name="C", email="c@example.com")
        db.session.add(customer)
        db.session.flush()
    order = Order(customer_id=customer.id, event_id=event.id, currency="BRL", total_cents=100)
    db.session.add(order)
    db.session.flush()
    db.session.add(
        Ticket(
            order_id=order.id,
            event_id=event.id,
            section_id=spot.section_id,
            spot_id=spot.id,
            price_cents=100,
            currency="BRL",
            status=status,
        )
    )
    db.session.commit()
    return order


def test_a_spot_has_at_most_one_live_ticket():
    event = make_event(make_partner("P"))
    spot = _spot(event)
    _order_with_ticket(event, spot)
    with pytest.raises(IntegrityError):
        _order_with_ticket(event, spot)
    db.session.rollback()


def test_a_revoked_ticket_frees_its_spot_for_a_new_live_one():
    event = make_event(make_partner("P"))
    spot = _spot(event)
    _order_with_ticket(event, spot, status="revoked")
    _order_with_ticket(event, spot)
    assert db.session.query(Ticket).filter_by(spot_id=spot.id).count() == 2


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("event_section", "price_cents", -1),
        ("event_spot", "status", "'lost'"),
        ("event", "status", "'maybe'"),
        ("partner", "fee_percent", 101),
    ],
)
def test_check_constraints_refuse_out_of_range_values(table, column, value):
    event = make_event(make_partner("P"))
    row_id = {"event_section": event.sections[0].id, "event_spot": _spot(event).id}.get(
        table, event.id if table == "event" else event.partner_id
    )
    with pytest.raises(IntegrityError):
        db.session.execute(text(f"UPDATE {table} SET {column} = {value} WHERE id = {row_id}"))
        db.session.commit()
    db.session.rollback()


def test_seat_labels_are_unique_within_a_section():
    event = make_event(make_partner("P"))
    section = event.sections[0]
    with pytest.raises(IntegrityError):
        db.session.execute(
            insert(EventSpot).values(
                section_id=section.id, event_id=event.id, label="A-1", position=99
            )
        )
        db.session.commit()
    db.session.rollback()


def test_a_spot_cannot_claim_another_events_id_than_its_sections():
    partner = make_partner("P")
    event = make_event(partner, "One")
    other = make_event(partner, "Two")
    with pytest.raises(IntegrityError):
        db.session.execute(
            insert(EventSpot).values(
                section_id=event.sections[0].id, event_id=other.id, label="Z-1", position=99
            )
        )
        db.session.commit()
    db.session.rollback()


def test_a_held_spot_must_name_its_hold_and_price_and_only_a_held_one_may():
    event = make_event(make_partner("P"))
    spot = _spot(event)
    with pytest.raises(IntegrityError):
        db.session.execute(text(f"UPDATE event_spot SET status = 'held' WHERE id = {spot.id}"))
        db.session.commit()
    db.session.rollback()
    customer = Customer(name="C", email="c@example.com")
    db.session.add(customer)
    db.session.flush()
    hold = Hold(
        customer_id=customer.id,
        event_id=event.id,
        created_at=utcnow(),
        expires_at=utcnow().replace(year=utcnow().year + 1),
    )
    db.session.add(hold)
    db.session.commit()
    with pytest.raises(IntegrityError):  # nor without the price its hold quoted
        db.session.execute(
            text(f"UPDATE event_spot SET status = 'held', hold_id = {hold.id} WHERE id = {spot.id}")
        )
        db.session.commit()
    db.session.rollback()
    db.session.execute(
        text(
            "UPDATE event_spot SET status = 'held', held_price_cents = 100,"
            f" hold_id = {hold.id} WHERE id = {spot.id}"
        )
    )
    db.session.commit()
    with pytest.raises(IntegrityError):
        db.session.execute(text(f"UPDATE event_spot SET status = 'sold' WHERE id = {spot.id}"))
        db.session.commit()
    db.session.rollback()


def test_a_cancelled_order_names_its_reason():
    """The reconcile sweep finds cancelled orders by their reason (ix_order_cancelled)."""
    event = make_event(make_partner("P"))
    order = _order_with_ticket(event, _spot(event))
    with pytest.raises(IntegrityError):
        db.session.execute(
            text("UPDATE \"order\" SET status = 'cancelled' WHERE id = :id"), {"id": order.id}
        )
        db.session.commit()
    db.session.rollback()
    db.session.execute(
        text(
            "UPDATE \"order\" SET status = 'cancelled', cancel_reason = 'hold_lost' WHERE id = :id"
        ),
        {"id": order.id},
    )
    db.session.commit()
