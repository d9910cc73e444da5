"""A lookup by more values than a statement may bind parameters (65,535): a stadium's tickets,
a busy day's settlement report, a bulk action on every row. ``any_of`` binds them as one array."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Event, NotFound, Payment
from app.models.base import any_of
from app.services.scoping import SYSTEM, get_owned_many
from tests.support.builders import make_partner
from tests.support.gate import open_event

MANY = 70_000

pytestmark = pytest.mark.usefixtures("db_context")


def test_a_lookup_by_more_values_than_a_statement_binds_finds_the_rows_among_them():
    events = [open_event(make_partner("Aurora")).id, open_event(make_partner("Bossa")).id]
    ids = [*range(10_000_000, 10_000_000 + MANY), *events]
    refs = [f"ch_unknown_{n}" for n in range(MANY)]

    found = db.session.scalars(select(Event.id).where(any_of(Event.id, ids))).all()
    by_ref = db.session.scalars(select(Payment).where(any_of(Payment.gateway_ref, refs))).all()

    assert sorted(found) == sorted(events)
    assert by_ref == []


def test_a_bulk_action_naming_more_rows_than_a_statement_binds_answers_not_found():
    event = open_event(make_partner("Aurora"))
    assert get_owned_many(db.session, Event, [event.id], SYSTEM) == [event]
    with pytest.raises(NotFound):
        get_owned_many(db.session, Event, [event.id, *range(10_000_000, 10_000_000 + MANY)], SYSTEM)
