"""Demo data for `make run`: users for every role, two partners, events in several cities,
and a week of sales before today for the events it creates (services/demo_history.py).

Idempotent: rows are looked up by their natural keys (username, partner name, event name)
and only missing ones are created.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, literal, select
from sqlalchemy.orm import Session

from app.models import (
    Customer,
    Event,
    EventSection,
    EventStatus,
    GateAssignment,
    Partner,
    PartnerStatus,
    SectionKind,
)
from app.models.base import utcnow
from app.models.promo import PromoCode
from app.services import demo_history
from app.services.catalog import folded
from app.services.events import generate_spots
from app.services.scoping import SYSTEM

DEMO_PASSWORD = "Ingresso-Demo-42"  # noqa: S105 - documented demo credential
LOGINS_BANNER = f"""
Demo logins (password {DEMO_PASSWORD} for all):
  admin      platform admin: partners, fees, every event
  partner1   partner "Aurora Produções": its events, sections and spots
  partner2   partner "Bossa Eventos"
  finance    finance: read-mostly views
  gate1      gate staff of Aurora Produções: scans tickets at /gate/ (the gala's doors are open)
  customer1  customer
  customer2  customer
The stadium final has a waiting room: press "Join the line" on its page before choosing seats.
Promo code BEMVINDO10 takes 10% off Aurora Produções' events (type it on an event's page).
"""
# A promo code of the first partner's, for all its events, as the banner says.
DEMO_PROMO = ("Aurora Produções", "BEMVINDO10", 10)


@dataclass
class SectionSpec:
    name: str
    kind: str
    price_cents: int
    rows: tuple[str, str] | None = None
    seats_per_row: int = 0
    places: int = 0
    prefix: str = ""


@dataclass
class EventSpec:
    partner: str
    name: str
    city: str
    venue: str
    category: str
    days_ahead: int
    sections: list[SectionSpec] = field(default_factory=list)
    publish: bool = True
    description: str = ""
    # Demo gates can scan this event's tickets today (its check-in window is open now).
    checkin_open_now: bool = False
    waiting_room_per_minute: int | None = None

    @property
    def address(self) -> str:
        return f"{self.venue}, {self.city}"


PARTNERS = {
    "Aurora Produções": ("partner1", Decimal("10.00"), 100),
    "Bossa Eventos": ("partner2", Decimal("8.50"), 50),
}

STADIUM_SECTIONS = [
    SectionSpec(
        f"Setor {n:02d}",
        SectionKind.SEATED,
        9000 + 500 * (n % 4),
        ("A", "Z"),
        40,
        prefix=f"S{n:02d}",
    )
    for n in range(1, 21)
]

EVENTS = [
    EventSpec(
        "Aurora Produções",
        "Orquestra Sinfônica: Noite de Gala",
        "São Paulo",
        "Theatro Municipal",
        "classical",
        20,
        [
            SectionSpec("Plateia", SectionKind.SEATED, 18000, ("A", "J"), 20),
            SectionSpec("Balcão", SectionKind.SEATED, 9000, ("A", "E"), 16),
        ],
        description="Gala night with the city's symphony orchestra.",
        checkin_open_now=True,
    ),
    EventSpec(
        "Aurora Produções",
        "Final do Campeonato",
        "São Paulo",
        "Estádio do Morumbi",
        "sports",
        45,
        STADIUM_SECTIONS,
        description="The season's final: 20,800 numbered seats. A waiting room lets buyers in "
        "at 600 a minute, first come, first served.",
        waiting_room_per_minute=600,
    ),
    EventSpec(
        "Aurora Produções",
        "Festival de Verão",
        "Salvador",
        "Arena Fonte Nova",
        "music",
        60,
        [
            SectionSpec("Pista", SectionKind.GENERAL, 12000, places=500),
            SectionSpec("Camarote", SectionKind.SEATED, 35000, ("A", "C"), 10),
        ],
        description="Three stages by the sea.",
    ),
    EventSpec(
        "Aurora Produções",
        "Jazz na Praça (rascunho)",
        "Curitiba",
        "Teatro Guaíra",
        "music",
        90,
        [SectionSpec("Plateia", SectionKind.SEATED, 7000, ("A", "F"), 12)],
        publish=False,
        description="A draft still being prepared.",
    ),
    EventSpec(
        "Bossa Eventos",
        "Bossa Nova ao Vivo",
        "Rio de Janeiro",
        "Vivo Rio",
        "music",
        15,
        [
            SectionSpec("Mesas", SectionKind.SEATED, 22000, ("A", "H"), 12),
            SectionSpec("Pista", SectionKind.GENERAL, 8000, places=300),
        ],
        description="Classics of bossa nova.",
    ),
    EventSpec(
        "Bossa Eventos",
        "Stand-up Comedy Night",
        "Belo Horizonte",
        "Cine Theatro Brasil",
        "comedy",
        25,
        [SectionSpec("Plateia", SectionKind.SEATED, 6000, ("A", "L"), 18)],
        description="Five comedians, one night.",
    ),
    EventSpec(
        "Bossa Eventos",
        "Frevo e Maracatu",
        "Recife",
        "Marco Zero",
        "festival",
        35,
        [SectionSpec("Área Geral", SectionKind.GENERAL, 4000, places=1000)],
        description="Open-air carnival preview.",
    ),
]

USERS = [
    # username, first, last, role, partner name
    ("admin", "Ada", "Admin", "Admin", None),
    ("partner1", "Paula", "Aurora", "Partner", "Aurora Produções"),
    ("partner2", "Pedro", "Bossa", "Partner", "Bossa Eventos"),
    ("finance", "Fernanda", "Finanças", "Finance", None),
    ("gate1", "Gabriel", "Portão", "Gate", "Aurora Produções"),
    ("customer1", "Clara", "Cliente", "Customer", None),
    ("customer2", "Caio", "Cliente", "Customer", None),
]


def has_events(session: Session) -> bool:
    return session.scalar(select(Event.id).limit(1)) is not None


def load(session: Session, sm: Any) -> str:
    """Create whatever demo rows are missing; returns a one-line summary."""
    created = {"partners": 0, "users": 0, "events": 0}
    new_events: list[int] = []
    partners: dict[str, Partner] = {}
    for name, (username, percent, fixed) in PARTNERS.items():
        partner = session.scalar(select(Partner).where(_same_name(Partner.name, name)))
        if partner is not None:
            partner.name = name  # spelled with its accents in a demo loaded before they were
        else:
            partner = Partner(
                name=name,
                contact_email=f"{username}@example.com",
                fee_percent=percent,
                fee_fixed_cents=fixed,
                status=PartnerStatus.APPROVED.value,
                approved_at=utcnow(),
            )
            session.add(partner)
            created["partners"] += 1
        partners[name] = partner
    session.commit()

    for username, first, last, role_name, partner_name in USERS:
        user = sm.find_user(username=username)
        if user is None:
            user = sm.add_user(
                username,
                first,
                last,
                f"{username}@example.com",
                [sm.find_role(role_name)],
                password=DEMO_PASSWORD,
            )
            if not user:
                raise RuntimeError(f"could not create demo user {username}")
            created["users"] += 1
        user.partner_id = partners[partner_name].id if partner_name else None
        if role_name == "Customer" and user.id not in _customer_user_ids(session):
            # Demo customers' addresses count as confirmed: their order mails are not held.
            session.add(
                Customer(
                    user_id=user.id,
                    name=f"{first} {last}",
                    email=user.email,
                    email_confirmed_at=utcnow(),
                )
            )
    session.commit()

    now = utcnow().replace(minute=0, second=0, microsecond=0)
    for spec in EVENTS:
        partner = partners[spec.partner]
        loaded = session.scalar(
            select(Event).where(Event.partner_id == partner.id, _same_name(Event.name, spec.name))
        )
        if loaded is not None:
            _respell(loaded, spec)
            session.commit()
            continue
        starts = now + dt.timedelta(days=spec.days_ahead, hours=20 - now.hour)
        event = Event(
            partner=partner,
            name=spec.name,
            description=spec.description,
            city=spec.city,
            venue=spec.venue,
            address=spec.address,
            category=spec.category,
            starts_at=starts,
            ends_at=starts + dt.timedelta(hours=4),
            # On sale since before the demo's history of sales began.
            sales_start=now - dt.timedelta(days=demo_history.DAYS + 3),
            currency="BRL",
            refund_window_hours=48,
            waiting_room_per_minute=spec.waiting_room_per_minute,
        )
        if spec.checkin_open_now:
            event.checkin_opens_at = now - dt.timedelta(hours=1)
            event.checkin_closes_at = starts + dt.timedelta(hours=4)
        session.add(event)
        for position, section_spec in enumerate(spec.sections, start=1):
            event.sections.append(
                EventSection(
                    name=section_spec.name,
                    kind=section_spec.kind.value,
                    price_cents=section_spec.price_cents,
                    position=position,
                )
            )
        session.commit()
        for section, section_spec in zip(event.sections, spec.sections, strict=True):
            generate_spots(
                session,
                section.id,
                SYSTEM,
                first_row=section_spec.rows[0] if section_spec.rows else None,
                last_row=section_spec.rows[1] if section_spec.rows else None,
                seats_per_row=section_spec.seats_per_row or None,
                quantity=section_spec.places or None,
                prefix=section_spec.prefix,
            )
        if spec.publish:
            event.publish()
        session.commit()
        created["events"] += 1
        new_events.append(event.id)
    _assign_gate_staff(session, sm)
    _add_promo_code(session, partners[DEMO_PROMO[0]])
    gate_user = sm.find_user(username="gate1")
    orders = demo_history.add_sales(session, new_events, utcnow(), gate_user.id)
    return (
        f"Demo data: {created['partners']} partners, {created['users']} users, "
        f"{created['events']} events, {orders} past orders created."
    )


def _add_promo_code(session: Session, partner: Partner) -> None:
    """The banner's promo code, unless the partner has it already."""
    _, code, percent = DEMO_PROMO
    found = select(PromoCode.id).where(PromoCode.partner_id == partner.id, PromoCode.code == code)
    if session.scalar(found) is None:
        promo = PromoCode(partner_id=partner.id, code=code, kind="percent", value=percent)
        promo.check()
        session.add(promo)
        session.commit()


def _same_name(column: Any, name: str) -> ColumnElement[bool]:
    """The demo's rows are found by their names in any spelling: a demo loaded before its names
    had their accents ("Sao Paulo") is the same demo."""
    return folded(column) == folded(literal(name))


def _respell(event: Event, spec: EventSpec) -> None:
    """An event of the demo, with the names of its spec (accents and all)."""
    event.name, event.city, event.venue = spec.name, spec.city, spec.venue
    event.address = spec.address
    for section, section_spec in zip(event.sections, spec.sections, strict=False):
        section.name = section_spec.name


def _assign_gate_staff(session: Session, sm: Any) -> None:
    """Demo gate staff may scan every published event of their partner."""
    for username, _, _, role_name, partner_name in USERS:
        if role_name != "Gate" or partner_name is None:
            continue
        user = sm.find_user(username=username)
        events = session.scalars(
            select(Event.id).where(
                Event.partner_id == _partner_ids(session)[partner_name],
                Event.status == EventStatus.PUBLISHED,
            )
        ).all()
        assigned = set(
            session.scalars(
                select(GateAssignment.event_id).where(GateAssignment.user_id == user.id)
            )
        )
        for event_id in events:
            if event_id not in assigned:
                session.add(GateAssignment(user_id=user.id, event_id=event_id))
    session.commit()


def _partner_ids(session: Session) -> dict[str, int]:
    return {name: pid for pid, name in session.execute(select(Partner.id, Partner.name))}


def _customer_user_ids(session: Session) -> set[int]:
    return set(session.scalars(select(Customer.user_id)))
