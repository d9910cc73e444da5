"""The business figures of the dashboard's home and of an event's overview.

What counts: a ticket *sold* is a valid ticket (paid and not refunded or revoked: a refund takes
it out of the figures); its *revenue* is the price it was sold at (what the customer paid,
before the platform's fee), in the event's currency, integer cents. A sale's time is its order's
``paid_at``. *Today* is the UTC day of ``now`` (a later issue shows the reader's zone) and the
*period* is the last ``days`` UTC days, today included. Check-in progress is the valid tickets
with an entry at the gates (scans judged from Redis count once the scan log is flushed).

Every figure is an aggregate in SQL (GROUP BY, ``date_trunc``): a fixed handful of queries per
page, whatever the number of events or tickets. Rows are limited by the partner scope
(services/scoping.py) through their event: a partner's users see their partner's figures only,
platform staff every partner's, with a breakdown per partner; another partner's event is a 404.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Select, distinct, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.models import (
    CheckinEntry,
    Event,
    EventSection,
    EventSpot,
    EventStatus,
    Order,
    Partner,
    Ticket,
    TicketStatus,
    format_money,
)
from app.services.scoping import Actor, get_owned, is_platform_staff, scope_clause

PERIODS = (7, 30, 90)  # days a reader may choose
DEFAULT_PERIOD = 30
HOME_EVENTS = 12  # events shown on the home, the next to start first


@dataclass(frozen=True)
class Sales:
    """Tickets sold, orders and revenue in one currency."""

    currency: str
    tickets: int = 0
    orders: int = 0
    revenue_cents: int = 0

    @property
    def revenue(self) -> str:
        return format_money(self.revenue_cents, self.currency)


@dataclass(frozen=True)
class PartnerSales:
    """One partner's sales in one currency: today and over the period."""

    partner_id: int
    name: str
    today: Sales
    period: Sales


@dataclass(frozen=True)
class DayPoint:
    day: dt.date
    tickets: int
    revenue_cents: int


@dataclass
class SectionFigures:
    section_id: int
    name: str
    capacity: int = 0
    sold: int = 0
    revenue_cents: int = 0
    entered: int = 0


@dataclass
class EventFigures:
    """One event's figures: all of its sales so far by section, and its sales per day over the
    period (every day of it, days without sales at zero)."""

    id: int
    name: str
    partner: str
    starts_at: dt.datetime
    status: str
    currency: str
    timezone: str
    sections: list[SectionFigures] = field(default_factory=list)
    series: list[DayPoint] = field(default_factory=list)

    @property
    def capacity(self) -> int:
        return sum(s.capacity for s in self.sections)

    @property
    def sold(self) -> int:
        return sum(s.sold for s in self.sections)

    @property
    def entered(self) -> int:
        return sum(s.entered for s in self.sections)

    @property
    def revenue_cents(self) -> int:
        return sum(s.revenue_cents for s in self.sections)

    @property
    def revenue(self) -> str:
        return format_money(self.revenue_cents, self.currency)

    def money(self, cents: int) -> str:
        return format_money(cents, self.currency)


@dataclass
class Figures:
    """What the home (or an event's overview) shows: sales today and over the period per
    currency, per partner (platform staff only), and the events'."""

    days: int
    since: dt.date
    today: list[Sales]
    period: list[Sales]
    events: list[EventFigures]
    partners: list[PartnerSales] | None = None
    more_events: int = 0


def period_start(now: dt.datetime, days: int) -> dt.datetime:
    """The first moment of the period: the last ``days`` UTC days, today included."""
    return dt.datetime.combine(now.date(), dt.time.min) - dt.timedelta(days=days - 1)


def home(session: Session, actor: Actor, now: dt.datetime, days: int = DEFAULT_PERIOD) -> Figures:
    """Sales today and over the period (per partner too for platform staff), and the figures
    of the events on sale or just held: the next to start first, at most HOME_EVENTS."""
    scope = scope_clause(Event, actor)
    since = period_start(now, days)
    by_partner = _sales_by_partner(session, scope, now, since)
    listed = (
        select(Event.id)
        .where(Event.status == EventStatus.PUBLISHED, Event.starts_at >= since)
        .order_by(Event.starts_at, Event.id)
    )
    if scope is not None:
        listed = listed.where(scope)
    event_ids = list(session.scalars(listed))
    return Figures(
        days=days,
        since=since.date(),
        today=_per_currency(p.today for p in by_partner),
        period=_per_currency(p.period for p in by_partner),
        events=event_figures(session, event_ids[:HOME_EVENTS], now, days),
        partners=by_partner if is_platform_staff(actor) else None,
        more_events=max(0, len(event_ids) - HOME_EVENTS),
    )


def overview(
    session: Session, actor: Actor, event_id: int, now: dt.datetime, days: int = DEFAULT_PERIOD
) -> Figures:
    """One event's figures (NotFound when the actor may not see it: another partner's)."""
    event = get_owned(session, Event, event_id, actor)
    since = period_start(now, days)
    sales = _sales_by_partner(session, Event.id == event.id, now, since)
    return Figures(
        days=days,
        since=since.date(),
        today=_per_currency(p.today for p in sales) or [Sales(event.currency)],
        period=_per_currency(p.period for p in sales) or [Sales(event.currency)],
        events=event_figures(session, [event.id], now, days),
    )


def _sold() -> Select:
    """Valid tickets with their order (its ``paid_at``) and event (its partner, the scope)."""
    return (
        select()
        .select_from(Ticket)
        .join(Order, Order.id == Ticket.order_id)
        .join(Event, Event.id == Ticket.event_id)
        .where(Ticket.status == TicketStatus.VALID)
    )


def _sales_by_partner(
    session: Session, scope: ColumnElement[bool] | None, now: dt.datetime, since: dt.datetime
) -> list[PartnerSales]:
    """Per partner and currency, today's sales and the period's, in one query."""
    today = dt.datetime.combine(now.date(), dt.time.min)
    is_today = Order.paid_at >= today
    query = (
        _sold()
        .join(Partner, Partner.id == Event.partner_id)
        .add_columns(
            Partner.id,
            Partner.name,
            Ticket.currency,
            func.count().filter(is_today),
            func.count(distinct(Order.id)).filter(is_today),
            func.coalesce(func.sum(Ticket.price_cents).filter(is_today), 0),
            func.count(),
            func.count(distinct(Order.id)),
            func.coalesce(func.sum(Ticket.price_cents), 0),
        )
        .where(Order.paid_at >= since, Order.paid_at <= now)
        .group_by(Partner.id, Partner.name, Ticket.currency)
        .order_by(Partner.name, Partner.id, Ticket.currency)
    )
    if scope is not None:
        query = query.where(scope)
    return [
        PartnerSales(
            pid,
            name,
            Sales(currency, int(t), int(o), int(r)),
            Sales(currency, int(pt), int(po), int(pr)),
        )
        for pid, name, currency, t, o, r, pt, po, pr in session.execute(query)
    ]


def _per_currency(rows: Iterable[Sales]) -> list[Sales]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for sales in rows:
        total = totals[sales.currency]
        total[0] += sales.tickets
        total[1] += sales.orders
        total[2] += sales.revenue_cents
    return [Sales(currency, *totals[currency]) for currency in sorted(totals)]


def event_figures(
    session: Session, event_ids: list[int], now: dt.datetime, days: int
) -> list[EventFigures]:
    """The events' figures, in the order of ``event_ids`` (which the caller scoped)."""
    if not event_ids:
        return []
    events = {
        row.id: EventFigures(
            row.id, row.name, row.partner, row.starts_at, row.status, row.currency, row.timezone
        )
        for row in session.execute(
            select(
                Event.id,
                Event.name,
                Partner.name.label("partner"),
                Event.starts_at,
                Event.status,
                Event.currency,
                Event.timezone,
            )
            .join(Partner, Partner.id == Event.partner_id)
            .where(Event.id.in_(event_ids))
        )
    }
    sections: dict[int, SectionFigures] = {}
    for section_id, event_id, name in session.execute(
        select(EventSection.id, EventSection.event_id, EventSection.name)
        .where(EventSection.event_id.in_(event_ids))
        .order_by(EventSection.event_id, EventSection.position, EventSection.id)
    ):
        sections[section_id] = SectionFigures(section_id, name)
        events[event_id].sections.append(sections[section_id])
    _count_by_section(session, event_ids, sections)
    since = period_start(now, days)
    _fill_series(session, event_ids, events, since.date(), now)
    return [events[event_id] for event_id in event_ids if event_id in events]


def _count_by_section(
    session: Session, event_ids: list[int], sections: dict[int, SectionFigures]
) -> None:
    """Capacity (spots), sold and revenue (valid tickets), entered (valid tickets with an entry
    at the gates), per section."""
    capacity = (
        select(EventSpot.section_id, func.count())
        .where(EventSpot.event_id.in_(event_ids))
        .group_by(EventSpot.section_id)
    )
    for section_id, count in session.execute(capacity):
        sections[section_id].capacity = int(count)
    sold = (
        _sold()
        .add_columns(Ticket.section_id, func.count(), func.sum(Ticket.price_cents))
        .where(Ticket.event_id.in_(event_ids))
        .group_by(Ticket.section_id)
    )
    for section_id, count, revenue in session.execute(sold):
        sections[section_id].sold = int(count)
        sections[section_id].revenue_cents = int(revenue)
    entered = (
        select(Ticket.section_id, func.count())
        .join(CheckinEntry, CheckinEntry.ticket_id == Ticket.id)
        .where(CheckinEntry.event_id.in_(event_ids), Ticket.status == TicketStatus.VALID)
        .group_by(Ticket.section_id)
    )
    for section_id, count in session.execute(entered):
        sections[section_id].entered = int(count)


def _fill_series(
    session: Session,
    event_ids: list[int],
    events: dict[int, EventFigures],
    since: dt.date,
    now: dt.datetime,
) -> None:
    """Each event's tickets and revenue per UTC day of the period, zero on days without."""
    day = func.date_trunc("day", Order.paid_at)
    per_day = (
        _sold()
        .add_columns(Ticket.event_id, day, func.count(), func.sum(Ticket.price_cents))
        .where(
            Ticket.event_id.in_(event_ids),
            Order.paid_at >= dt.datetime.combine(since, dt.time.min),
            Order.paid_at <= now,
        )
        .group_by(Ticket.event_id, day)
    )
    found = {
        (event_id, moment.date()): (int(count), int(revenue))
        for event_id, moment, count, revenue in session.execute(per_day)
    }
    days = [since + dt.timedelta(days=n) for n in range((now.date() - since).days + 1)]
    for event_id, figures in events.items():
        figures.series = [DayPoint(d, *found.get((event_id, d), (0, 0))) for d in days]
