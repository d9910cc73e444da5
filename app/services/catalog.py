"""Public catalogue: search events on sale, their sections' prices and availability, seat maps."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask_babel import gettext
from sqlalchemy import ColumnElement, Select, and_, exists, func, literal, literal_column, select
from sqlalchemy.orm import Session, joinedload, selectinload

from app.models import (
    DomainError,
    Event,
    EventSection,
    EventSpot,
    EventStatus,
    NotFound,
    PromoCode,
    SpotStatus,
)
from app.models.base import utcnow
from app.models.money import AmbiguousAmount, AmountError, cents_from_amount, parse_decimal

STATUS_CODES = {
    SpotStatus.AVAILABLE: "0",
    SpotStatus.HELD: "1",
    SpotStatus.SOLD: "2",
    SpotStatus.BLOCKED: "3",
}
PAGE_SIZE = 12
MAX_CENTS = 2**31 - 1
# The query arguments a search is made of (besides "page").
FILTER_ARGS = ("q", "city", "category", "date_from", "date_to", "price_min", "price_max")


@dataclass(frozen=True)
class Search:
    text: str = ""
    city: str = ""
    category: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    price_min_cents: int | None = None
    price_max_cents: int | None = None
    page: int = 1


@dataclass(frozen=True)
class Page:
    events: list[Event]
    total: int
    page: int
    pages: int


def search_from_args(args: Any) -> Search:
    """Search filters from query arguments (the API); DomainError names the first bad one."""
    search, errors = search_and_errors(args)
    if errors:
        field, message = next(iter(errors.items()))
        raise DomainError(message, field=field)
    return search


def search_and_errors(args: Any) -> tuple[Search, dict[str, str]]:
    """Search filters from query arguments (the pages): a bad one is left out of the search and
    its message returned by its name, so that the others still apply."""
    errors: dict[str, str] = {}

    def parsed(parse: Callable[[str | None, str], Any], field: str) -> Any:
        try:
            return parse(args.get(field), field)
        except DomainError as err:
            errors[field] = err.message
            return None

    search = Search(
        text=(args.get("q") or "")[:200],
        city=args.get("city") or "",
        category=args.get("category") or "",
        date_from=parsed(_date, "date_from"),
        date_to=parsed(_date, "date_to"),
        price_min_cents=parsed(_cents, "price_min"),
        price_max_cents=parsed(_cents, "price_max"),
        page=parsed(_page, "page") or 1,
    )
    return search, errors


def filter_args(args: Any) -> dict[str, str]:
    """The search filters given in query arguments, as given (for links to other pages of the
    same search); nothing else the arguments carry."""
    return {name: args[name] for name in FILTER_ARGS if args.get(name)}


def _page(value: str | None, field: str) -> int:
    try:
        return int(value or 1)
    except ValueError:
        raise DomainError(
            gettext("%(field)s must be a whole number.", field=field), field=field
        ) from None


def _cents(value: str | None, field: str) -> int | None:
    """An amount such as "150,00" or "150.00" in cents (``parse_decimal``'s rule); amounts
    beyond any price are capped, not refused."""
    if value in (None, ""):
        return None
    try:
        amount = parse_decimal(value, field=field, example="100,00")
    except AmbiguousAmount as err:  # the filters' messages name their field
        raise DomainError(f"{field}: {err.message}", field=field) from None
    except AmountError:
        raise DomainError(
            gettext("%(field)s must be a number such as 100,00.", field=field), field=field
        ) from None
    if amount < 0:
        raise DomainError(gettext("%(field)s must be a positive amount.", field=field), field=field)
    if amount >= Decimal(MAX_CENTS) / 100:
        return MAX_CENTS
    try:
        return cents_from_amount(amount, field=field)
    except DomainError:  # its message is about "the price": say which
        raise DomainError(
            gettext("%(field)s takes at most two decimal places, such as 100,50.", field=field),
            field=field,
        ) from None


def _date(value: str | None, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise DomainError(
            gettext("%(field)s must be a date such as 2027-01-31.", field=field), field=field
        ) from None


def public_event(session: Session, event_id: int) -> Event:
    """A published or cancelled event (drafts do not exist for the public)."""
    event = session.get(Event, event_id, options=[joinedload(Event.partner)])
    if event is None or event.status == EventStatus.DRAFT:
        raise NotFound(gettext("Event not found."))
    return event


def search_events(session: Session, search: Search, now: dt.datetime | None = None) -> Page:
    """Published events whose sales are open, filtered, earliest first, a page at a time."""
    query = search_query(search, now or utcnow())
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, search.page), pages)
    events = session.scalars(
        query.order_by(Event.starts_at, Event.id)
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
        .options(joinedload(Event.partner))
    ).all()
    return Page(list(events), total, page, pages)


def search_query(search: Search, now: dt.datetime) -> Select[Any]:
    """The events on sale that a search finds, in no order. Words are found in any case, with or
    without accents, in any Portuguese inflection; a city in any spelling."""
    query: Select[Any] = select(Event).where(Event.on_sale_clause(now))
    if search.text.strip():
        query = query.where(text_match(search.text.strip()))
    if search.city.strip():
        query = query.where(folded(Event.city) == folded(literal(search.city)))
    if search.category.strip():
        query = query.where(func.lower(Event.category) == search.category.strip().lower())
    if search.date_from:
        query = query.where(Event.starts_at >= dt.datetime.combine(search.date_from, dt.time()))
    if search.date_to and search.date_to < dt.date.max:
        end = dt.datetime.combine(search.date_to, dt.time()) + dt.timedelta(days=1)
        query = query.where(Event.starts_at < end)
    # Prices are 32-bit integers in cents: a bound beyond that is no bound.
    price_min = min(search.price_min_cents, MAX_CENTS) if search.price_min_cents else None
    price_max = search.price_max_cents if (search.price_max_cents or 0) < MAX_CENTS else None
    if price_min is not None or price_max is not None:
        price = EventSection.event_id == Event.id
        if price_min is not None:
            price = and_(price, EventSection.price_cents >= price_min)
        if price_max is not None:
            price = and_(price, EventSection.price_cents <= price_max)
        query = query.where(exists().where(price))
    return query


# The text search configuration of migration 13526b5f3cae: Portuguese, accents folded before
# the stemmer, so that "São Paulo", "sao paulo" and "SAO PAULO" are the same words.
SEARCH_CONFIG = "pt_unaccent"
# Literal SQL, not bound parameters, so that PostgreSQL matches its GIN index expression
# (the migration holds the same text).
SEARCH_DOCUMENT_SQL = (
    f"to_tsvector('{SEARCH_CONFIG}', coalesce(event.name, '') || ' ' "
    "|| coalesce(event.description, '') || ' ' || coalesce(event.venue, '') || ' ' "
    "|| coalesce(event.city, ''))"
)


def search_document() -> Any:
    """The text PostgreSQL indexes for search."""
    return literal_column(SEARCH_DOCUMENT_SQL)


def text_match(text: str) -> Any:
    """The condition that an event has the words of ``text`` (web search syntax: "quoted
    phrases", -excluded words), folded and stemmed as the index has them."""
    query = func.websearch_to_tsquery(literal_column(f"'{SEARCH_CONFIG}'::regconfig"), text)
    return search_document().op("@@")(query)


def folded(value: Any) -> ColumnElement[str]:
    """A name as compared, in SQL: without accents, lower case, trimmed ("São Paulo " and
    "SAO PAULO" are both "sao paulo")."""
    return func.lower(func.unaccent(func.btrim(value)))


def facets(session: Session, now: dt.datetime | None = None, city: str = "") -> dict[str, Any]:
    """Cities and categories that have events on sale, for the search filters, and the city
    listed for ``city`` (a filter given in any spelling), "" when none is.

    A city is listed once however its partners spelled it ("Sao Paulo", "São Paulo"), under
    its best spelling (best_spelling) and in the order of its folded name."""
    now = now or utcnow()
    key = folded(Event.city)
    rows = session.execute(
        select(key, Event.city, func.count(), key == folded(literal(city)))
        .where(Event.on_sale_clause(now))
        .group_by(Event.city)
    ).all()
    spellings: dict[str, dict[str, int]] = defaultdict(dict)
    chosen = ""
    for folded_name, spelling, count, matches in rows:
        spellings[folded_name][spelling] = count
        if matches and city.strip():
            chosen = folded_name
    cities = {name: best_spelling(counts) for name, counts in spellings.items()}
    categories = session.scalars(
        select(Event.category)
        .where(Event.on_sale_clause(now), Event.category.is_not(None))
        .distinct()
        .order_by(Event.category)
    ).all()
    return {
        "cities": [cities[name] for name in sorted(cities)],
        "categories": list(categories),
        "city": cities.get(chosen, ""),
    }


def best_spelling(counts: dict[str, int]) -> str:
    """The spelling to show of one name given by several (each with how many rows use it): one
    with accents first (folding loses them; "Sao Paulo" is "São Paulo" typed without them), then
    one in mixed case (not "SAO PAULO"), then the most used, then the first in order."""

    def rank(spelling: str) -> tuple[bool, bool, int, str]:
        accented = any(unicodedata.combining(c) for c in unicodedata.normalize("NFD", spelling))
        mixed_case = not spelling.isupper() and not spelling.islower()
        return (not accented, not mixed_case, -counts[spelling], spelling)

    return min(counts, key=rank)


def section_availability(
    session: Session,
    event_id: int,
    now: dt.datetime | None = None,
    promo: PromoCode | None = None,
) -> list[dict[str, Any]]:
    """Each section with its price and counts; expired holds count as available. A hidden
    (presale) section or type is listed only with the ``promo`` code that unlocks it; with a
    code, each price it applies to has its ``promo_price_cents`` (None where it does not)."""
    now = now or utcnow()
    status = EventSpot.status
    free = EventSpot.free_clause(now)
    rows = session.execute(
        select(
            EventSpot.section_id,
            func.count().filter(free),
            func.count().filter(and_(status == SpotStatus.HELD, ~free)),
            func.count().filter(status == SpotStatus.SOLD),
            func.count().filter(status == SpotStatus.BLOCKED),
        )
        .where(EventSpot.event_id == event_id)
        .group_by(EventSpot.section_id)
    ).all()
    counts = {row[0]: row[1:] for row in rows}
    sections = session.scalars(
        select(EventSection)
        .where(EventSection.event_id == event_id)
        .order_by(EventSection.position, EventSection.id)
        .options(selectinload(EventSection.ticket_types))
    ).all()

    def with_code(price: int, section_id: int, type_id: int | None) -> int | None:
        applies = (
            promo is not None
            and promo.section_id in (None, section_id)
            and promo.ticket_type_id in (None, type_id)
        )
        return promo.price_for(price) if applies else None

    result = []
    for section in sections:
        if section.hidden and (promo is None or promo.section_id != section.id):
            continue
        available, held, sold, blocked = counts.get(section.id, (0, 0, 0, 0))
        result.append(
            {
                "id": section.id,
                "name": section.name,
                "kind": section.kind,
                "price_cents": section.price_cents,
                "promo_price_cents": with_code(section.price_cents, section.id, None),
                "available": available,
                "held": held,
                "sold": sold,
                "blocked": blocked,
                # The types a buyer may pick (none: every ticket at the section's price).
                "ticket_types": [
                    {
                        "id": kind.id,
                        "name": kind.name,
                        "kind": kind.kind,
                        "price_cents": kind.price_cents,
                        "promo_price_cents": with_code(kind.price_cents, section.id, kind.id),
                        "check_document": kind.check_document,
                    }
                    for kind in section.ticket_types
                    if kind.public
                    and (not kind.hidden or (promo is not None and promo.ticket_type_id == kind.id))
                ],
            }
        )
    return result


def spot_map(
    session: Session, event_id: int, section_id: int | None = None, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Compact availability: per section, parallel arrays of ids, rows and seats (or labels) and a
    status string with one character per spot (0 available, 1 held, 2 sold, 3 blocked)."""
    now = now or utcnow()
    event = public_event(session, event_id)
    query = (
        select(
            EventSpot.section_id,
            EventSpot.id,
            EventSpot.row_label,
            EventSpot.seat_number,
            EventSpot.label,
            EventSpot.status,
            EventSpot.held_until,
        )
        .where(EventSpot.event_id == event.id)
        .order_by(EventSpot.section_id, EventSpot.position, EventSpot.id)
    )
    if section_id is not None:
        query = query.where(EventSpot.section_id == section_id)
    else:  # a hidden (presale) section's seats are shown when it is asked for by its id
        query = query.where(
            EventSpot.section_id.not_in(
                select(EventSection.id).where(
                    EventSection.event_id == event.id, EventSection.hidden.is_(True)
                )
            )
        )
    sections: dict[int, dict[str, Any]] = {}
    for section, spot_id, row, seat, label, status, held_until in session.execute(query):
        entry = sections.setdefault(
            section, {"id": section, "ids": [], "rows": [], "seats": [], "status": []}
        )
        entry["ids"].append(spot_id)
        entry["rows"].append(row)
        entry["seats"].append(seat if seat is not None else label)
        free = EventSpot.is_free(status, held_until, now)  # an expired hold's spots too
        entry["status"].append("0" if free else STATUS_CODES[SpotStatus(status)])
    for entry in sections.values():
        entry["status"] = "".join(entry["status"])
    return {"event_id": event.id, "sections": list(sections.values())}


def lowest_prices(session: Session, event_ids: list[int]) -> dict[int, int]:
    """The cheapest section price of each event, for "from BRL ..." in listings."""
    if not event_ids:
        return {}
    rows = session.execute(
        select(EventSection.event_id, func.min(EventSection.price_cents))
        .where(EventSection.event_id.in_(event_ids), EventSection.hidden.is_(False))
        .group_by(EventSection.event_id)
    ).all()
    return dict(rows)
