"""The dashboard's home and an event's overview show the business: sales today and over the
period, revenue, tickets by section, check-in progress and sales per day, equal to what the
database holds; a partner sees only its own (another partner's overview is a 404), platform
staff every partner's with a breakdown, gate staff check-in progress without money."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Event, Order, Ticket, TicketStatus, format_money
from app.models.base import utcnow
from app.services import dashboard_stats
from app.services.checkin import flush_scan_log
from app.services.payments import gateway
from app.services.refunds import refund_order
from app.services.scoping import SYSTEM
from tests.support.builders import PartnerActor, login, make_partner, make_user
from tests.support.gate import device, open_event, result, scan
from tests.support.money import happened_days_ago
from tests.support.shop import buy


def _truth(event: Event, since: dt.datetime | None = None) -> dict[str, Any]:
    """What the database holds of the event's sales, read row by row (no aggregate SQL)."""
    db.session.expire_all()
    tickets = db.session.scalars(select(Ticket).where(Ticket.event_id == event.id)).all()
    valid = [t for t in tickets if t.status == TicketStatus.VALID]
    if since is not None:
        valid = [t for t in valid if db.session.get(Order, t.order_id).paid_at >= since]
    sold = Counter(t.section.name for t in valid)
    revenue = Counter()
    for ticket in valid:
        revenue[ticket.section.name] += ticket.price_cents
    return {
        "tickets": len(valid),
        "orders": len({t.order_id for t in valid}),
        "revenue": sum(revenue.values()),
        "sold": dict(sold),
        "revenue_by_section": dict(revenue),
    }


@pytest.fixture
def business(client) -> dict[str, Any]:
    """Aurora (alice, gate gina) sells its two-section concert: 3 tickets three days ago, then
    today 2 + 3 in section 1 and 4 in section 2, one order of 2 refunded, 2 tickets scanned in.
    Bossa (bob) sells 5 tickets of its own show today."""
    aurora, bossa = make_partner("Aurora"), make_partner("Bossa")
    make_user("alice", "Partner", aurora)
    make_user("gina", "Gate", aurora)
    make_user("bob", "Partner", bossa)
    make_user("root", "Admin")
    make_user("fiona", "Finance")
    concert = open_event(aurora, "Aurora Concert", sections=2)
    show = open_event(bossa, "Bossa Show")
    earlier = buy(client, concert, 3)
    happened_days_ago(3)
    order = db.session.get(Order, earlier["id"])
    order.paid_at -= dt.timedelta(days=3)
    db.session.commit()
    buy(client, concert, 2)
    refunded = buy(client, concert, 2)
    kept = buy(client, concert, 3)
    buy(client, concert, 4, section=1)
    buy(client, show, 5)
    refund_order(db.session, gateway(), refunded["id"], SYSTEM)
    gate = device(aurora, concert)
    for ticket in kept["tickets"][:2]:
        assert result(scan(client, gate, ticket["code"]))["result"] == "valid"
    flush_scan_log(db.session)  # scans judged from Redis reach the database
    db.session.commit()
    return {"aurora": aurora, "bossa": bossa, "concert": concert, "show": show}


def test_the_figures_equal_what_the_database_holds(business):
    concert = business["concert"]
    now = utcnow()
    today = dt.datetime.combine(now.date(), dt.time.min)
    figures = dashboard_stats.home(db.session, PartnerActor(business["aurora"]), now, 7)

    everything, of_today = _truth(concert), _truth(concert, today)
    assert (everything["tickets"], of_today["tickets"]) == (12, 9)
    assert figures.today == [
        dashboard_stats.Sales("BRL", of_today["tickets"], of_today["orders"], of_today["revenue"])
    ]
    assert figures.period == [
        dashboard_stats.Sales(
            "BRL", everything["tickets"], everything["orders"], everything["revenue"]
        )
    ]
    assert figures.partners is None  # a partner gets no breakdown by partner
    [event] = figures.events
    assert event.id == concert.id
    assert {s.name: s.sold for s in event.sections} == everything["sold"]
    assert {s.name: s.revenue_cents for s in event.sections} == everything["revenue_by_section"]
    assert [s.capacity for s in event.sections] == [30, 30]
    assert (event.sold, event.entered, event.revenue_cents) == (12, 2, everything["revenue"])
    # Sales per day: the last 7 days, 3 tickets three days ago and 9 today.
    assert [p.day for p in event.series] == [
        now.date() - dt.timedelta(days=n) for n in range(6, -1, -1)
    ]
    assert [p.tickets for p in event.series] == [0, 0, 0, 3, 0, 0, 9]
    assert sum(p.revenue_cents for p in event.series) == everything["revenue"]


def test_a_partner_home_shows_its_figures_and_nothing_of_another_partner(client, business):
    login(client, "alice")
    page = client.get("/dashboard/?days=7").get_data(as_text=True)
    revenue = format_money(_truth(business["concert"])["revenue"], "BRL")
    assert "Aurora Concert" in page and revenue in page
    assert re.search(r'id="sales-today".*?class="tickets">9<', page, re.S)
    assert re.search(r'id="sales-period".*?class="tickets">12<', page, re.S)
    assert "2 of 12 in" in page and 'class="bar"' in page
    assert "Bossa" not in page and 'id="by-partner"' not in page
    overview = client.get(f"/eventoverview/{business['concert'].id}")
    assert overview.status_code == 200 and revenue in overview.get_data(as_text=True)

    client.get("/logout/")
    login(client, "bob")
    theirs = client.get("/dashboard/").get_data(as_text=True)
    assert "Bossa Show" in theirs and "Aurora" not in theirs and revenue not in theirs
    assert client.get(f"/eventoverview/{business['concert'].id}").status_code == 404
    assert client.get("/eventoverview/999999").status_code == 404
    assert client.get(f"/eventoverview/{business['show'].id}").status_code == 200


def test_an_overview_shows_tickets_and_revenue_by_section_and_check_in_progress(client, business):
    login(client, "alice")
    concert = business["concert"]
    truth = _truth(concert)
    page = client.get(f"/eventoverview/{concert.id}?days=30").get_data(as_text=True)
    for section in concert.sections:
        row = re.search(rf'data-section="{section.id}">(.*?)</tr>', page, re.S).group(1)
        assert f'class="sold">{truth["sold"][section.name]}<' in row
        assert format_money(truth["revenue_by_section"][section.name], "BRL") in row
    assert "Check-in: 2 of 12 in (16%)" in page
    assert len(re.findall(r'<rect class="bar"', page)) == 30
    assert re.search(r'id="overview-today".*?class="tickets">9<', page, re.S)


def test_platform_staff_see_every_partner_with_a_breakdown(client, business):
    aurora, bossa = _truth(business["concert"]), _truth(business["show"])
    for user in ("root", "fiona"):
        client.get("/logout/")
        login(client, user)
        assert f"Signed in as <strong>{user}</strong>" in client.get("/dashboard/").get_data(
            as_text=True
        )
        page = client.get("/dashboard/").get_data(as_text=True)
        assert "Aurora Concert" in page and "Bossa Show" in page
        table = re.search(r'id="by-partner".*?</table>', page, re.S).group(0)
        for partner, truth in ((business["aurora"], aurora), (business["bossa"], bossa)):
            row = re.search(rf'data-partner="{partner.id}">(.*?)</tr>', table, re.S).group(1)
            assert f'class="tickets">{truth["tickets"]}<' in row
            assert format_money(truth["revenue"], "BRL") in row
        total = aurora["tickets"] + bossa["tickets"]
        assert re.search(rf'id="sales-period".*?class="tickets">{total}<', page, re.S)
        assert client.get(f"/eventoverview/{business['show'].id}").status_code == 200
        assert client.post(f"/eventview/action/overview/{business['show'].id}").location.endswith(
            f"/eventoverview/{business['show'].id}"
        )


def test_gate_staff_see_check_in_progress_without_money(client, business):
    login(client, "gina")
    page = client.get("/dashboard/").get_data(as_text=True)
    assert "Aurora Concert" in page and "2 of 12 in" in page
    assert "BRL" not in page and 'class="bar"' not in page
    assert client.get(f"/eventoverview/{business['concert'].id}").status_code == 403


@pytest.mark.parametrize("days", ["0", "31", "abc", "-7", "7.0"])
def test_a_period_other_than_7_30_or_90_days_is_a_400(client, business, days):
    login(client, "alice")
    assert client.get(f"/dashboard/?days={days}").status_code == 400
    assert client.get(f"/eventoverview/{business['concert'].id}?days={days}").status_code == 400
