"""Courtesy tickets (cortesias): a partner gives free tickets of a section's courtesy type to a
customer, without a hold or a payment. They take the section's free spots (best first) and count
towards the type's cap like sold ones; the order is paid at zero and posts nothing to the
ledger (no money moved). The customer finds them in their orders and gets the order
confirmation mail a buyer gets (tickets attached); the gate admits them as any ticket, showing
the type.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from app.models import (
    Conflict,
    Customer,
    DomainError,
    EventSpot,
    EventStatus,
    NotFound,
    Order,
    OrderStatus,
    Ticket,
    TicketKind,
    TicketStatus,
    TicketType,
)
from app.models.base import utcnow
from app.models.codes import TicketClaim, sign_ticket
from app.models.order import printed_label
from app.services.locking import busy_on_lock_failure
from app.services.mail import customer_mails, outbox
from app.services.purchase import ticket_types
from app.services.scoping import Actor, owned_query

MAX_COURTESY = 50  # tickets given at once


@dataclass(frozen=True)
class Given:
    order_id: int
    ticket_ids: list[int]


def give(
    session: Session,
    actor: Actor,
    ticket_type_id: int,
    email: str,
    quantity: int,
    now: dt.datetime | None = None,
) -> Given:
    """Give ``quantity`` courtesy tickets of the type to the customer with ``email``."""
    now = now or utcnow()
    if not isinstance(quantity, int) or not 1 <= quantity <= MAX_COURTESY:
        raise DomainError(
            gettext("Give 1 to %(most)s tickets at a time.", most=MAX_COURTESY), field="quantity"
        )
    with busy_on_lock_failure(session):
        kind = session.scalars(
            owned_query(TicketType, actor)
            .where(TicketType.id == ticket_type_id)
            .options(joinedload(TicketType.section))
            .with_for_update(of=TicketType)
        ).first()
        if kind is None:
            raise NotFound(gettext("Ticket type not found."))
        if kind.kind != TicketKind.COURTESY:
            raise Conflict(gettext("Only a courtesy type is given away."), field="ticket_type")
        event = kind.section.event
        if event.status != EventStatus.PUBLISHED or now >= (event.ends_at or event.starts_at):
            raise Conflict(
                gettext("Courtesy tickets are given for a published event that is not over.")
            )
        customer = session.scalar(
            select(Customer).where(Customer.email == (email or "").strip().lower())
        )
        if customer is None:
            raise NotFound(
                gettext("No customer has this e-mail: they sign up first."), field="email"
            )
        if kind.cap is not None:
            left = max(kind.cap - ticket_types.taken_of(session.connection(), kind.id, now), 0)
            if quantity > left:
                raise Conflict(
                    gettext("Only %(left)s courtesy ticket(s) left.", left=left), field="quantity"
                )
        spots = session.scalars(
            select(EventSpot)
            .where(EventSpot.section_id == kind.section_id, EventSpot.free_clause(now))
            .order_by(EventSpot.position, EventSpot.id)
            .limit(quantity)
            .with_for_update(skip_locked=True)
        ).all()
        if len(spots) < quantity:
            raise Conflict(
                gettext("Only %(free)s spot(s) free in this section.", free=len(spots)),
                field="quantity",
            )
        order = Order(
            customer_id=customer.id,
            event_id=event.id,
            status=OrderStatus.PAID.value,
            total_cents=0,
            currency=event.currency,
            created_at=now,
            paid_at=now,
        )
        session.add(order)
        tickets = []
        for spot in spots:
            EventSpot.GIVE.apply(spot, f"Spot {spot.label}")
            ticket = Ticket(
                order=order,
                event_id=event.id,
                section_id=spot.section_id,
                spot_id=spot.id,
                price_cents=0,
                currency=event.currency,
                ticket_type_id=kind.id,
                status=TicketStatus.VALID.value,
                holder_name=customer.name,
                issued_at=now,
            )
            session.add(ticket)
            tickets.append((ticket, spot))
        session.flush()
        for ticket, spot in tickets:
            label = printed_label(kind.section.name, spot.label, kind.name)
            ticket.code = sign_ticket(event.signing_key, TicketClaim(event.id, ticket.id, label))
        # The customer gets the same confirmation as a buyer, tickets attached, with the gift.
        outbox.queue_to_customer(
            session,
            customer_mails.ORDER_PAID,
            customer.id,
            key=customer_mails.order_paid_key(order.id),
            params={"order_id": order.id},
            tickets=True,
        )
        session.commit()
    return Given(order.id, [ticket.id for ticket, _ in tickets])
