"""Mails to customers (see messages.py for how a kind is registered and rendered).

``order_paid``: the order confirmation, written in the transaction that marks the order paid
(``purchase/confirm.py`` for a card sale, ``courtesy.py`` for tickets given at zero). It carries
the tickets as the gate reads them: each one's QR code inline, the PDF of the tickets (a page
each) and the event as a calendar entry attached. What the customer paid, never the platform's
fee, and nothing of the card (the issue's "no card data": not even its last digits).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import url_for
from flask_babel import gettext
from sqlalchemy.orm import Session

from app.models import Order, OrderStatus, PaymentStatus
from app.services import ticket_documents
from app.services.mail import outbox
from app.services.mail.messages import Attachment, Gone, Inline, Message, render_pair, renderer

ORDER_PAID = "order_paid"


def order_paid_key(order_id: int) -> str:
    """The cause of an order's confirmation: one mail per order, however often it is queued
    (a retried checkout, the reconcile task)."""
    return f"{ORDER_PAID}:{order_id}"


def queue_order_paid(
    session: Session,
    order_id: int,
    *,
    email: str,
    confirmed_at: dt.datetime | None,
    saved_locale: str | None,
    user_id: int | None,
) -> int | None:
    """The order's confirmation, from the customer's columns the caller already read (the sale
    locks a row that has them): one INSERT, no lookup. Held while the address is unconfirmed.
    The language follows outbox.locale_of's rule."""
    return outbox.queue(
        session,
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
