"""A status change is defined once on its model (app/models/base.py, Transition): the method that
changes a loaded row and the purchase path's UPDATE are both built from it."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.dialects import postgresql

from app.models import Conflict, EventSpot, Order, Payment

NOW = dt.datetime(2031, 6, 1, 20, 0)


def sql(statement) -> str:
    compiled = statement.compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    return " ".join(str(compiled).split())


def test_a_change_sets_the_new_status_and_its_columns():
    payment = Payment(id=7, status="pending")
    payment.capture("ref-1", NOW)
    assert (payment.status, payment.gateway_ref, payment.captured_at) == ("captured", "ref-1", NOW)


def test_a_row_in_another_status_is_refused_and_left_as_it_was():
    payment = Payment(id=7, status="declined")
    with pytest.raises(Conflict, match="Payment 7 is declined, not pending."):
        payment.capture("ref-1", NOW)
    assert (payment.status, payment.gateway_ref) == ("declined", None)


def test_a_change_empties_the_columns_it_clears():
    spot = EventSpot(label="A-1", status="held", hold_id=3, held_until=NOW, held_price_cents=9)
    spot.release()
    assert (spot.status, spot.hold_id, spot.held_until, spot.held_price_cents) == (
        "available", None, None, None,
    )  # fmt: skip


def test_the_update_leaves_from_the_same_status_and_writes_the_same_columns():
    table = Payment.__table__
    statement = Payment.CAPTURE.update(table, table.c.id == 7, gateway_ref="ref-1", captured_at=NOW)
    assert sql(statement) == (
        "UPDATE payment SET status='captured', gateway_ref='ref-1', "
        "captured_at='2031-06-01 20:00:00' "
        "WHERE payment.id = 7 AND payment.status = 'pending'"
    )


def test_the_update_of_a_change_from_several_statuses_names_them_all():
    table = EventSpot.__table__
    statement = EventSpot.HOLD.update(
        table,
        table.c.id == 1,
        hold_id=3,
        held_until=NOW,
        held_price_cents=22000,
        held_ticket_type_id=None,
        held_request_key=None,
        held_promo_code_id=None,
        held_discount_cents=None,
    )
    assert "WHERE event_spot.id = 1 AND event_spot.status IN ('available', 'held')" in sql(
        statement
    )


def test_the_update_empties_the_columns_the_change_clears():
    table = EventSpot.__table__
    statement = EventSpot.SELL.update(table, table.c.id == 1)
    emptied = (
        "hold_id=NULL, held_until=NULL, held_price_cents=NULL, held_ticket_type_id=NULL, "
        "held_request_key=NULL, held_promo_code_id=NULL, held_discount_cents=NULL"
    )
    assert sql(statement).startswith(f"UPDATE event_spot SET status='sold', {emptied} ")


@pytest.mark.parametrize("given", [{}, {"paid_at": NOW, "cancel_reason": "x"}])
def test_a_change_takes_exactly_the_columns_it_writes(given):
    with pytest.raises(TypeError):
        Order.PAY.update(Order.__table__, **given)
    with pytest.raises(TypeError):
        Order.PAY.apply(Order(id=1, status="pending"), "Order 1", **given)
