"""Customer accounts: sign-up creates a platform user (role Customer) and its Customer row."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from typing import Any

from flask_babel import gettext
from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session, selectinload

from app.i18n import current_locale
from app.models import (
    Customer,
    DomainError,
    Event,
    EventSection,
    EventSpot,
    NotFound,
    Order,
    Payment,
    PaymentStatus,
    Ticket,
    TicketType,
)
from app.models.errors import Conflict
from app.models.partner import PartnerUser
from app.services import accounts, email_confirmation

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# The email is the login's username too, the shorter column.
MAX_EMAIL: int = PartnerUser.__table__.c.username.type.length


class EmailTaken(Conflict):
    code = "email_taken"


def sign_up(session: Session, sm: Any, name: str, email: str, password: str) -> Customer:
    """Create the customer's login (the email is the username) and Customer row, and e-mail
    the link that confirms the address (until then their purchase mails wait)."""
    name = (name or "").strip()
    email = (email or "").strip().lower()
    if not name:
        raise DomainError(gettext("Give your name."), field="name")
    if len(name) > 150:
        raise DomainError(gettext("The name is too long (150 characters at most)."), field="name")
    if not EMAIL.match(email):
        raise DomainError(gettext("Give a valid email address."), field="email")
    if len(email) > MAX_EMAIL:
        raise DomainError(
            gettext(
                "The email is too long (%(max_email)s characters at most).", max_email=MAX_EMAIL
            ),
            field="email",
        )
    accounts.check_password(password, [email, name])
    taken = session.scalar(select(func.count()).where(func.lower(Customer.email) == email))
    if taken or sm.find_user(username=email) or sm.find_user(email=email):
        raise EmailTaken(
            gettext("An account with this email already exists: log in."), field="email"
        )
    first, _, last = name.partition(" ")
    user = sm.add_user(
        email, first[:64], (last or "-")[:64], email, [sm.find_role("Customer")], password=password
    )
    if not user:
        raise EmailTaken(
            gettext("An account with this email already exists: log in."), field="email"
        )
    # Their mails speak the language they signed up in (ab_user.locale, as the switcher saves).
    locale = current_locale()
    user.locale = locale
    customer = Customer(user_id=user.id, name=name, email=email)
    session.add(customer)
    session.flush()
    email_confirmation.send_link(session, customer, locale)
    session.commit()
    return customer


def customer_of(session: Session, user: Any) -> Customer:
    """The Customer row of a logged-in user; NotFound for staff without one."""
    user_id = getattr(user, "id", None)
    customer = (
        session.scalar(select(Customer).where(Customer.user_id == user_id)) if user_id else None
    )
    if customer is None:
        raise NotFound(gettext("This login has no customer account."))
    return customer


def orders_of(session: Session, customer_id: int) -> list[Order]:
    """The customer's purchase history, newest first: orders that were charged (paid, or
    cancelled and refunded, or charged back); unpaid attempts are left out."""
    return list(
        session.scalars(
            _history(customer_id).options(selectinload(Order.tickets), selectinload(Order.payments))
        )
    )


def _history(customer_id: int) -> Select[tuple[Order]]:
    charged = Payment.status.in_(
        [PaymentStatus.CAPTURED, PaymentStatus.REFUNDED, PaymentStatus.CHARGED_BACK]
    )
    return (
        select(Order)
        .where(Order.customer_id == customer_id, Order.payments.any(charged))
        .order_by(Order.created_at.desc(), Order.id.desc())
    )


def order_of(session: Session, customer_id: int, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None or order.customer_id != customer_id:
        raise NotFound(gettext("Order not found."))
    return order


@dataclass(frozen=True)
class OrderLine:
    id: int
    event_id: int
    event_name: str
    status: str
    total_cents: int
    currency: str
    created_at: dt.datetime
    paid_at: dt.datetime | None
    cancel_reason: str | None


@dataclass(frozen=True)
class PaymentLine:
    """A payment as its customer sees it: what was charged and given back, never the platform's
    fee or the partner's net (a partner's negotiated terms)."""

    id: int
    status: str
    amount_cents: int
    refunded_cents: int
    card_brand: str | None
    card_last4: str | None
    failure_reason: str | None


@dataclass(frozen=True)
class TicketLine:
    id: int
    status: str
    section_name: str
    spot_label: str
    price_cents: int
    holder_name: str | None
    code: str | None
    ticket_type: str | None = None  # its type's name (None: the section's full price)
    # Held by someone else: transferred to another customer (its code is theirs, not shown).
    transferred: bool = False
    discount_cents: int = 0  # what a promo code took off its price (price_cents is paid)


@dataclass(frozen=True)
class OrderRecord:
    """An order as the API shows it, read without the ORM: the order (with the event's name),
    its payments and its tickets (with section name and spot label), each in id order."""

    order: OrderLine
    payments: list[PaymentLine]
    tickets: list[TicketLine]


_order, _event, _payment = Order.__table__, Event.__table__, Payment.__table__
_ticket, _section, _spot = Ticket.__table__, EventSection.__table__, EventSpot.__table__
_type = TicketType.__table__
_ORDERS = (
    select(
        *(_order.c[name] for name in OrderLine.__dataclass_fields__ if name != "event_name"),
        _event.c.name.label("event_name"),
    )
    .select_from(_order.join(_event, _event.c.id == _order.c.event_id))
    .where(
        _order.c.id.in_(bindparam("ids", expanding=True)),
        _order.c.customer_id == bindparam("customer_id"),
    )
)
_PAYMENTS = (
    select(_payment.c.order_id, *(_payment.c[name] for name in PaymentLine.__dataclass_fields__))
    .where(_payment.c.order_id.in_(bindparam("ids", expanding=True)))
    .order_by(_payment.c.id)
)
_TICKETS = (
    select(
        _ticket.c.order_id,
        _ticket.c.id,
        _ticket.c.status,
        _section.c.name.label("section_name"),
        _spot.c.label.label("spot_label"),
        _ticket.c.price_cents,
        _ticket.c.holder_name,
        _ticket.c.code,
        _type.c.name.label("ticket_type"),
        # Held by another customer than the order's (its owner_id), for order_records.
        (_ticket.c.owner_id.is_not(None) & (_ticket.c.owner_id != bindparam("customer_id"))).label(
            "transferred"
        ),
        _ticket.c.discount_cents,
    )
    .select_from(
        _ticket.join(_section, _section.c.id == _ticket.c.section_id)
        .join(_spot, _spot.c.id == _ticket.c.spot_id)
        .outerjoin(_type, _type.c.id == _ticket.c.ticket_type_id)
    )
    .where(_ticket.c.order_id.in_(bindparam("ids", expanding=True)))
    .order_by(_ticket.c.id)
)


def order_records(session: Session, customer_id: int, order_ids: list[int]) -> list[OrderRecord]:
    """The customer's orders among ``order_ids``, in that order (three queries, however many);
    another customer's are left out."""
    if not order_ids:
        return []
    conn = session.connection()
    params = {"ids": order_ids, "customer_id": customer_id}
    orders = {row.id: OrderLine(**row._mapping) for row in conn.execute(_ORDERS, params)}
    payments: dict[int, list[PaymentLine]] = {}
    for order_id, *line in conn.execute(_PAYMENTS, params):
        payments.setdefault(order_id, []).append(PaymentLine(*line))
    tickets: dict[int, list[TicketLine]] = {}
    for order_id, *line in conn.execute(_TICKETS, params):
        ticket = TicketLine(*line)
        tickets.setdefault(order_id, []).append(ticket)
    if any(t.transferred for lines in tickets.values() for t in lines):
        given_to = _recipients_of_buyer(session, customer_id, order_ids)
        for lines in tickets.values():
            for n, ticket in enumerate(lines):
                if ticket.transferred:  # its code admits its holder: not the buyer's to see,
                    # nor a later holder's name (only whom the buyer handed it to)
                    lines[n] = replace(ticket, code=None, holder_name=given_to.get(ticket.id))
    return [
        OrderRecord(orders[i], payments.get(i, []), tickets.get(i, []))
        for i in order_ids
        if i in orders
    ]


def _recipients_of_buyer(
    session: Session, customer_id: int, order_ids: list[int]
) -> dict[int, str | None]:
    """For each ticket of these orders held by another customer: the name of the customer the
    buyer handed it to (the recipient of the buyer's transfer in its chain)."""
    rows = session.execute(
        select(Ticket.id, Ticket.replaced_by_id, Ticket.owner_id, Customer.name)
        .outerjoin(Customer, Customer.id == Ticket.owner_id)
        .where(Ticket.order_id.in_(order_ids))
    ).all()
    predecessor = {row.replaced_by_id: row for row in rows if row.replaced_by_id is not None}
    names: dict[int, str | None] = {}
    for row in rows:
        current = row
        for _ in range(1000):  # a chain of transfers, never a loop; bounded all the same
            before = predecessor.get(current.id)
            if before is None:
                break
            if before.owner_id is None or before.owner_id == customer_id:
                names[row.id] = current.name
                break
            current = before
    return names


def order_record(session: Session, customer_id: int, order_id: int) -> OrderRecord:
    found = order_records(session, customer_id, [order_id])
    if not found:
        raise NotFound(gettext("Order not found."))
    return found[0]


def order_ids_of(session: Session, customer_id: int) -> list[int]:
    """The ids of the customer's purchase history (orders_of), newest first."""
    return list(session.scalars(_history(customer_id).with_only_columns(Order.id)))
