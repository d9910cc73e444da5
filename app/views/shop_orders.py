"""Customer pages of orders and tickets, on the shop's blueprint (shop.py): the orders, an
order and its documents (PDF, calendar entry), cancelling it, a ticket, naming its holder and
transferring it.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext

from app.extensions import db
from app.models import DomainError, NotFound
from app.models.base import utcnow
from app.services import customers, refunds, ticket_documents, tickets
from app.services.payments import gateway
from app.views.base import current_customer
from app.views.shop import bp, login_redirect


@bp.get("/orders")
def orders() -> Any:
    customer = current_customer()
    if customer is None:
        return login_redirect()
    return render_template(
        "shop/orders.html",
        orders=customers.orders_of(db.session, customer.id),
        received=tickets.received_tickets(db.session, customer.id),
        unconfirmed=customer.email_confirmed_at is None,
        email=customer.email,
    )


@bp.get("/orders/<int:order_id>")
def order(order_id: int) -> Any:
    customer = current_customer()
    if customer is None:
        return login_redirect()
    try:
        order = customers.order_of(db.session, customer.id, order_id)
    except NotFound:
        abort(404)
    # A used ticket: the order is not cancelled here (refunds.cancel_by_customer).
    used = refunds.used_tickets(db.session, order) if order.status == "paid" else []
    return render_template("shop/order.html", order=order, now=utcnow(), used=used)


@bp.get("/tickets/<int:ticket_id>")
def ticket(ticket_id: int) -> Any:
    """A ticket the customer holds (bought, or transferred to them): its code, and the forms
    that name its holder or hand it to another customer while the event's rules allow."""
    customer = current_customer()
    if customer is None:
        return login_redirect()
    try:
        found = tickets.owned_ticket(db.session, customer.id, ticket_id)
    except NotFound:
        abort(404)
    return render_template(
        "shop/ticket.html",
        ticket=found,
        event=found.event,
        rule=tickets.changeable(found),
        bought=found.order.customer_id == customer.id,
    )


@bp.get("/tickets/<int:ticket_id>/ticket.pdf")
def ticket_pdf(ticket_id: int) -> Any:
    """One ticket the customer holds, as a page to print or keep on a phone."""
    customer = current_customer()
    if customer is None:
        return login_redirect(url_for(".ticket", ticket_id=ticket_id))
    try:
        found = tickets.owned_ticket(db.session, customer.id, ticket_id)
    except NotFound:
        abort(404)
    lines = ticket_documents.valid_tickets(
        db.session, found.order, held_by=customer.id, ticket_id=found.id
    )
    if not lines:
        abort(409, description=gettext("This ticket is no longer valid."))
    return download(
        ticket_documents.tickets_pdf(db.session, found.order, lines),
        ticket_documents.PDF_MIMETYPE,
        f"ticket-{found.id}.pdf",
    )


@bp.post("/tickets/<int:ticket_id>/holder")
def rename_ticket(ticket_id: int) -> Any:
    customer = current_customer()
    if customer is None:
        return login_redirect(url_for(".ticket", ticket_id=ticket_id))
    try:
        tickets.rename(db.session, customer.id, ticket_id, request.form.get("holder_name", ""))
    except NotFound:
        abort(404)
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
        return redirect(url_for(".ticket", ticket_id=ticket_id))
    flash(gettext("The ticket's holder is changed: the same code admits them."), "success")
    return redirect(url_for(".ticket", ticket_id=ticket_id))


@bp.post("/tickets/<int:ticket_id>/transfer")
def transfer_ticket(ticket_id: int) -> Any:
    customer = current_customer()
    if customer is None:
        return login_redirect(url_for(".ticket", ticket_id=ticket_id))
    try:
        old = tickets.owned_ticket(db.session, customer.id, ticket_id)
        order_id, bought = old.order_id, old.order.customer_id == customer.id
        new = tickets.transfer(db.session, customer.id, ticket_id, request.form.get("email", ""))
    except NotFound:
        abort(404)
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
        return redirect(url_for(".ticket", ticket_id=ticket_id))
    flash(
        gettext(
            "Ticket transferred to %(name)s: its old code no longer admits anyone.",
            name=new.holder_name,
        ),
        "success",
    )
    if bought:
        return redirect(url_for(".order", order_id=order_id))
    return redirect(url_for(".orders"))


@bp.get("/orders/<int:order_id>/tickets.pdf")
def order_tickets_pdf(order_id: int) -> Any:
    """The order's valid tickets, a page each, to print or keep on a phone."""
    return _order_document(order_id, "pdf")


@bp.get("/orders/<int:order_id>/calendar.ics")
def order_calendar(order_id: int) -> Any:
    """The event as a calendar entry, in the venue's zone."""
    return _order_document(order_id, "ics")


def _order_document(order_id: int, kind: str) -> Any:
    """Only the signed-in owner's paid order: another's or a missing one is a 404 (as its
    page); one of theirs with no valid ticket (unpaid, refunded) a 409, naming why."""
    customer = current_customer()
    if customer is None:
        return login_redirect(url_for(".order", order_id=order_id))
    try:
        order = ticket_documents.owned_order(db.session, customer.id, order_id)
    except NotFound:
        abort(404)
    except DomainError as err:
        abort(err.status, description=err.message)
    return document_response(order, kind)


def document_response(order: Any, kind: str) -> Response:
    """A ticket document as a download named after the order."""
    if kind == "pdf":
        data = ticket_documents.tickets_pdf(db.session, order)
        return download(data, ticket_documents.PDF_MIMETYPE, ticket_documents.pdf_filename(order))
    data = ticket_documents.order_ics(db.session, order)
    return download(data, ticket_documents.ICS_MIMETYPE, ticket_documents.ics_filename(order))


def download(data: Any, mimetype: str, filename: str) -> Response:
    """A ticket document as an attachment named ``filename``; never cached by the way (a
    ticket's code admits whoever holds it)."""
    response = Response(data, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/orders/<int:order_id>/cancel")
def cancel_order(order_id: int) -> Any:
    customer = current_customer()
    if customer is None:
        return login_redirect()
    try:
        refunds.cancel_by_customer(db.session, gateway(), customer.id, order_id)
    except NotFound:
        abort(404)
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
        return redirect(url_for(".order", order_id=order_id))
    flash(gettext("Your order is cancelled: the full amount goes back to your card."), "success")
    return redirect(url_for(".order", order_id=order_id))
