"""Best-available reads a section's open spots through ix_event_spot_open_position in the plan
PostgreSQL keeps for a prepared statement, not only in the first custom plans: psycopg prepares
every statement run often, and after five runs PostgreSQL may keep a generic plan, planned
without the parameters' values. The index's predicate (status available or held) must be in
the SQL for that plan to use it; as bound values it was not, and every hold late in an on-sale,
and every refusal of a sold-out section, read the section's sold seats on the whole section's
index."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import EventSection, EventSpot
from app.models.base import utcnow
from app.services import events as event_service
from app.services.purchase import hold
from app.services.scoping import SYSTEM
from tests.support.builders import make_event, make_partner
from tests.support.plans import analyze, generic_plan

PLACES, SOLD = 3000, 2950


@pytest.fixture
def late_in_an_on_sale(app: Any) -> dict[str, Any]:
    """A general-admission section of 3,000 places, all but the last 50 sold, analysed."""
    event = make_event(make_partner("Aurora"), sections=0)
    event.sections.append(EventSection(name="Pista", kind="general", price_cents=10000))
    db.session.commit()
    section_id = event.sections[0].id
    event_service.generate_spots(db.session, section_id, SYSTEM, quantity=PLACES)
    event.publish()
    db.session.commit()
    first = db.session.scalar(select(func.min(EventSpot.position)))
    db.session.execute(
        update(EventSpot)
        .where(EventSpot.section_id == section_id, EventSpot.position < first + SOLD)
        .values(status="sold")
    )
    db.session.commit()
    analyze("event_spot")
    return {
        "event_id": event.id,
        "section_id": section_id,
        "customer_id": 1,  # the plan is the same for any customer
        "now": utcnow(),
        "wanted": 2,
        "spot_limit": 10,
        "window": 12,
        "request_key": None,
    }


# The indexes that hold only spots that may be free, or find them by status.
OPEN_SPOTS = ("ix_event_spot_open_position", "ix_event_spot_event_status")


@pytest.mark.parametrize(
    "statement",
    ["_LOCK_BEST", "_LOCK_CUSTOMER_READ_EVENT", "_FREE_IN_SECTION"],
)
def test_a_prepared_best_available_statement_reads_only_open_spots(
    late_in_an_on_sale: dict[str, Any], statement: str
) -> None:
    plan = generic_plan(getattr(hold, statement), late_in_an_on_sale)
    # the section's spots, not the customer's own held ones (their_spot, by hold)
    reads = [line for line in plan.splitlines() if " on event_spot" in line and "their" not in line]
    assert reads, plan
    assert all(any(index in line for index in OPEN_SPOTS) for line in reads), plan
