"""Mails to customers (see messages.py for how a kind is registered and rendered).

``order_paid``: the order confirmation, written in the transaction that marks the order paid
(``purchase/confirm.py`` for a card sale, ``courtesy.py`` for tickets given at zero). It carries
the tickets as the gate reads them: each one's QR code inline, the PDF of the tickets (a page
each) and the event as a calendar entry attached. What the customer paid, never the platform's
fee, and nothing of the card (the issue's "no card data": not even its last digits).

``ticket_received`` and ``ticket_transferred``: a transfer (services/tickets.py), to the
recipient with the new ticket (its QR code inline and its PDF), and a notice to the customer
who handed it on.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import url_for
from flask_babel import gettext
from sqlalchemy.orm import Session

from app.models import Order, OrderStatus, PaymentStatus, Ticket
from app.services import ticket_documents
from app.services.mail import outbox
from app.services.mail.messages import Attachment, Gone, Inline, Message, render_pair, renderer

ORDER_PAID = "order_paid"


def order_paid_key(order_id: int) -> str:
    """The cause of an order's confirmation: one mail per order, however often it is queued
    (a retried checkout, the reconcile task)."""
    return f"{ORDER_PAID}:{order_id}"


def order_paid_values(
    order_id: int,
    *,
    email: str,
    confirmed_at: dt.datetime | None,
    saved_locale: str | None,
    user_id: int | None,
) -> dict[str, Any]:
    """The order's confirmation, as the parameters of its INSERT (outbox.mail_values), from the
    customer's columns the sale already read (it locks a row that has them): no lookup. The
    sale writes it as a step of its own statement (outbox.queue_step). Held while the address
    is unconfirmed; the language follows outbox.locale_of's rule."""
    return outbox.mail_values(
        ORDER_PAID,
        email,
        key=order_paid_key(order_id),
        locale=outbox.locale_from(saved_locale, user_id),
        params={"order_id": order_id},
        held=confirmed_at is None,
    )


@renderer(ORDER_PAID)
def order_paid_mail(session: Session, params: dict[str, Any]) -> Message:
    order = session.get(Order, params["order_id"])
    if order is None:
        raise Gone(f"order {params['order_id']} no longer exists")
    tickets = ticket_documents.valid_tickets(session, order)
    if order.status != OrderStatus.PAID or not tickets:
        # Cancelled or refunded before the mail left: its own notice says so.
        raise Gone(f"order {order.id} has no valid tickets any more")
    event = order.event
    payment = next((p for p in order.payments if p.status == PaymentStatus.CAPTURED), None)
    subject = gettext("Your tickets for %(event)s (order #%(id)s)", event=event.name, id=order.id)
    message = render_pair(
        ORDER_PAID,
        subject,
        order=order,
        event=event,
        partner=event.partner,
        customer=order.customer,
        tickets=tickets,
        payment=payment,
        where=ticket_documents.venue_line(order),
        order_url=url_for("shop.order", order_id=order.id, _external=True),
        qr_cid=_qr_cid,
    )
    message.inline = [
        Inline(_qr_cid(ticket.id), "image/png", ticket_documents.qr_png(ticket.code))
        for ticket in tickets
    ]
    message.attachments = [
        Attachment(
            ticket_documents.pdf_filename(order),
            ticket_documents.PDF_MIMETYPE,
            ticket_documents.tickets_pdf(session, order, tickets),
        ),
        Attachment(
            ticket_documents.ics_filename(order),
            ticket_documents.ICS_MIMETYPE,
            ticket_documents.order_ics(session, order, tickets),
        ),
    ]
    return message


def _qr_cid(ticket_id: int) -> str:
    return f"ticket-{ticket_id}-qr@bilheteria"


# -- transfers (services/tickets.py) --------------------------------------------------------------

TICKET_RECEIVED = "ticket_received"
TICKET_TRANSFERRED = "ticket_transferred"


def queue_ticket_transfer(session: Session, old: Ticket, new: Ticket) -> None:
    """A transfer's two mails, in its transaction: the new ticket to its recipient (it carries
    the ticket, so it waits until their address is confirmed, as an order's confirmation does),
    and a notice to the customer who handed it on (at once)."""
    outbox.queue_to_customer(
        session,
        TICKET_RECEIVED,
        new.owner_id,
        key=f"{TICKET_RECEIVED}:{new.id}",
        params={"ticket_id": new.id, "from_ticket_id": old.id},
        tickets=True,
    )
    outbox.queue_to_customer(
        session,
        TICKET_TRANSFERRED,
        old.owner_customer_id,
        key=f"{TICKET_TRANSFERRED}:{old.id}",
        params={"ticket_id": old.id, "to_ticket_id": new.id},
    )


@renderer(TICKET_RECEIVED)
def ticket_received_mail(session: Session, params: dict[str, Any]) -> Message:
    ticket = session.get(Ticket, params["ticket_id"])
    if ticket is None or ticket.owner_id is None:
        raise Gone(f"ticket {params['ticket_id']} no longer exists")
    order = ticket.order
    lines = ticket_documents.valid_tickets(
        session, order, held_by=ticket.owner_id, ticket_id=ticket.id
    )
    if not lines:  # refunded, or handed on again before the mail left
        raise Gone(f"ticket {ticket.id} is no longer its recipient's valid ticket")
    sender = session.get(Ticket, params["from_ticket_id"])
    event = order.event
    subject = gettext("A ticket for %(event)s was transferred to you", event=event.name)
    message = render_pair(
        TICKET_RECEIVED,
        subject,
        event=event,
        partner=event.partner,
        customer=ticket.owner,
        sender=sender.owner_customer if sender is not None else order.customer,
        tickets=lines,
        where=ticket_documents.venue_line(order),
        ticket_url=url_for("shop.ticket", ticket_id=ticket.id, _external=True),
        qr_cid=_qr_cid,
    )
    message.inline = [
        Inline(_qr_cid(line.id), "image/png", ticket_documents.qr_png(line.code)) for line in lines
    ]
    message.attachments = [
        Attachment(
            f"ticket-{ticket.id}.pdf",
            ticket_documents.PDF_MIMETYPE,
            ticket_documents.tickets_pdf(session, order, lines),
        ),
    ]
    return message


@renderer(TICKET_TRANSFERRED)
def ticket_transferred_mail(session: Session, params: dict[str, Any]) -> Message:
    old = session.get(Ticket, params["ticket_id"])
    new = session.get(Ticket, params["to_ticket_id"])
    if old is None or new is None:
        raise Gone(f"ticket {params['ticket_id']} no longer exists")
    event = old.event
    subject = gettext("Your ticket for %(event)s was transferred", event=event.name)
    return render_pair(
        TICKET_TRANSFERRED,
        subject,
        event=event,
        customer=old.owner_customer,
        ticket=old,
        recipient=new.owner,
        # The buyer keeps the order; a recipient passing it on has no order of it to see (404):
        # their tickets are listed with their orders.
        bought=old.owner_customer_id == old.order.customer_id,
        order_url=url_for("shop.order", order_id=old.order_id, _external=True),
        tickets_url=url_for("shop.orders", _external=True),
    )
