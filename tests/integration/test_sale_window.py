"""Whether an event sells is one rule (app/models/event.py, SaleWindow): the purchase path asks
it in Python (Event.is_on_sale, and rows read with SALE_COLUMNS), the catalogue in SQL
(Event.on_sale_clause). Every case below goes through both, on PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Event
from app.models.event import SALE_COLUMNS, sale_window
from app.models.partner import Partner
from tests.support.builders import make_partner

STARTS = dt.datetime(2031, 6, 1, 20, 0)
HOUR = dt.timedelta(hours=1)
OPENS, CLOSES = STARTS - 48 * HOUR, STARTS - 24 * HOUR

CASES = [
    # event status, partner status, sales_start, sales_end, now, on sale
    ("published", "approved", None, None, STARTS - HOUR, True),
    ("published", "approved", None, None, STARTS, False),  # closes when the event starts
    ("published", "approved", None, None, STARTS + HOUR, False),
    ("published", "approved", OPENS, None, OPENS - dt.timedelta(seconds=1), False),
    ("published", "approved", OPENS, None, OPENS, True),  # opens at sales_start
    ("published", "approved", None, CLOSES, CLOSES - dt.timedelta(seconds=1), True),
    ("published", "approved", None, CLOSES, CLOSES, False),  # closes at sales_end
    ("published", "approved", OPENS, CLOSES, OPENS + HOUR, True),
    ("published", "approved", OPENS, CLOSES, CLOSES + HOUR, False),
    ("published", "approved", None, STARTS + HOUR, STARTS, True),  # sales_end rules, not the start
    ("draft", "approved", None, None, STARTS - HOUR, False),
    ("cancelled", "approved", None, None, STARTS - HOUR, False),
    ("published", "suspended", None, None, STARTS - HOUR, False),
    ("published", "pending", None, None, STARTS - HOUR, False),
]


@pytest.mark.parametrize(
    ("status", "partner_status", "sales_start", "sales_end", "now", "on_sale"), CASES
)
def test_python_and_sql_agree_on_whether_an_event_sells(
    status, partner_status, sales_start, sales_end, now, on_sale
):
    event = Event(
        partner=make_partner("Aurora", status=partner_status),
        name="Concert",
        venue="Hall",
        city="Sao Paulo",
        starts_at=STARTS,
        ends_at=STARTS + 3 * HOUR,
        sales_start=sales_start,
        sales_end=sales_end,
        status=status,
        currency="BRL",
    )
    db.session.add(event)
    db.session.commit()
    in_sql = db.session.scalar(select(Event.on_sale_clause(now)).where(Event.id == event.id))
    row = db.session.execute(
        select(*SALE_COLUMNS)
        .join_from(Event, Partner, Partner.id == Event.partner_id)
        .where(Event.id == event.id)
    ).one()
    assert (event.is_on_sale(now), sale_window(row).is_open(now), in_sql) == (on_sale,) * 3
