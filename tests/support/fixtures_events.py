"""Plugin: the partners and events most tests start from."""

from __future__ import annotations

from typing import Any

import pytest

from app.extensions import db
from app.models import Event
from tests.support.builders import make_event, make_partner, make_user


@pytest.fixture
def two_partners() -> dict[str, Any]:
    """Partner A (user alice, gate user gina) with an event; partner B (user bob) with one."""
    a = make_partner("Partner A")
    b = make_partner("Partner B")
    make_user("alice", "Partner", a)
    make_user("bob", "Partner", b)
    make_user("gina", "Gate", a)
    make_user("root", "Admin")
    make_user("fiona", "Finance")
    event_a = make_event(a, "A Concert")
    event_b = make_event(b, "B Concert")
    return {"a": a, "b": b, "event_a": event_a, "event_b": event_b}


@pytest.fixture
def on_sale() -> Event:
    """Aurora's published "Concert": one section of 30 seats (rows A to C) at BRL 100.00."""
    event = make_event(make_partner("Aurora"), rows=("A", "C"), seats=10)
    event.publish()
    db.session.commit()
    return event
