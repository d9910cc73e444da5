"""Customer JSON API, after the purchase: a customer's orders (history, documents, cancelling)
and tickets (renaming the holder, transferring to another customer), JWT or session. Thin, as
shop_api.py: parse, call a service, serialise; another customer's order or ticket answers 404.
"""

from __future__ import annotations

from typing import Any

from flask_appbuilder.api import BaseApi, expose, safe
from flask_appbuilder.security.decorators import permission_name, protect

from app.extensions import db
from app.services import customers, refunds, ticket_documents, tickets
from app.services.payments import gateway
from app.views.api_input import domain_errors, json_body, request_customer_id
from app.views.shop_json import order_json, ticket_json
from app.views.shop_orders import document_response


class OrderApi(BaseApi):
    resource_name = "orders"
    openapi_spec_tag = "Purchase"
    allow_browser_login = True

    @expose("/", methods=["GET"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("get")
    def list(self) -> Any:
        """The current customer's orders, newest first.
        ---
        get:
          summary: My orders
          responses:
            200:
              description: Orders with their tickets
        """
        customer_id = request_customer_id()
        ids = customers.order_ids_of(db.session, customer_id)
        records = customers.order_records(db.session, customer_id, ids)
        return self.response(200, result=[order_json(r) for r in records], count=len(records))

    @expose("/<int:pk>", methods=["GET"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("get")
    def get(self, pk: int) -> Any:
        """One of the current customer's orders.
        ---
        get:
          summary: Show an order
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          responses:
            200:
              description: The order with its tickets
            404:
              description: Not found (or another customer's)
        """
        customer_id = request_customer_id()
        record = customers.order_record(db.session, customer_id, pk)
        return self.response(200, result=order_json(record))

    @expose("/<int:pk>/tickets.pdf", methods=["GET"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("get")
    def tickets_pdf(self, pk: int) -> Any:
        """My order's valid tickets as a PDF, one page per ticket with its QR code.
        ---
        get:
          summary: Download an order's tickets (PDF)
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          responses:
            200:
              description: One A4 page per valid ticket; Content-Disposition names the order
              content:
                application/pdf:
                  schema: {type: string, format: binary}
            404:
              description: Not found (or another customer's)
            409:
              description: '{"error": "no_valid_tickets"}: the order is not paid, or every
                ticket was refunded'
        """
        order = ticket_documents.owned_order(db.session, request_customer_id(), pk)
        return document_response(order, "pdf")

    @expose("/<int:pk>/calendar.ics", methods=["GET"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("get")
    def calendar_ics(self, pk: int) -> Any:
        """My order's event as an iCalendar entry, in the venue's time zone.
        ---
        get:
          summary: Download an order's calendar entry (.ics)
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          responses:
            200:
              description: One VEVENT; Content-Disposition names the order
              content:
                text/calendar:
                  schema: {type: string}
            404:
              description: Not found (or another customer's)
            409:
              description: '{"error": "no_valid_tickets"}: the order is not paid, or every
                ticket was refunded'
        """
        order = ticket_documents.owned_order(db.session, request_customer_id(), pk)
        return document_response(order, "ics")

    @expose("/<int:pk>/cancel", methods=["POST"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("cancel")
    def cancel(self, pk: int) -> Any:
        """Cancel one of my paid orders for a full refund, within the event's refund window and
        while none of its tickets was used at the gate.
        ---
        post:
          summary: Cancel an order (full refund to the card)
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          responses:
            200:
              description: The refunded order; its tickets are revoked
            404:
              description: Not found (or another customer's)
            409:
              description: '{"error": "refund_window_closed", "deadline"}; {"error":
                "ticket_used", "tickets": [{"id", "seat", "entered_at", "gate"}]}; or the order
                is not paid'
        """
        customer_id = request_customer_id()
        order = refunds.cancel_by_customer(db.session, gateway(), customer_id, pk)
        return self.response(
            200, result=order_json(customers.order_record(db.session, customer_id, order.id))
        )


class TicketApi(BaseApi):
    """Tickets as their holder sees them: bought, or transferred to them by another customer
    (app/services/tickets.py)."""

    resource_name = "tickets"
    openapi_spec_tag = "Purchase"
    allow_browser_login = True

    @expose("/", methods=["GET"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("get")
    def list(self) -> Any:
        """The valid tickets the current customer holds: bought and not handed on, or
        transferred to them.
        ---
        get:
          summary: My tickets
          responses:
            200:
              description: Tickets with their codes, soonest event first
        """
        customer_id = request_customer_id()
        held = tickets.held_tickets(db.session, customer_id)
        return self.response(
            200, result=[ticket_json(t, customer_id) for t in held], count=len(held)
        )

    @expose("/<int:pk>", methods=["GET"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("get")
    def get(self, pk: int) -> Any:
        """One ticket the current customer holds.
        ---
        get:
          summary: Show a ticket
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          responses:
            200:
              description: The ticket
            404:
              description: Not found (or not the customer's, another's or handed on)
        """
        customer_id = request_customer_id()
        ticket = tickets.owned_ticket(db.session, customer_id, pk)
        return self.response(200, result=ticket_json(ticket, customer_id))

    @expose("/<int:pk>", methods=["PUT"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("put")
    def put(self, pk: int) -> Any:
        """Name the ticket's holder (the same code admits them; the gate shows the name).
        ---
        put:
          summary: Rename a ticket's holder
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [holder_name]
                  properties:
                    holder_name: {type: string, maxLength: 150}
          responses:
            200:
              description: The ticket with its new holder
            400:
              description: No name, or one too long
            404:
              description: Not found (or not the customer's)
            409:
              description: '`transfers_not_allowed` (the event forbids changes),
                `transfers_closed` (after the deadline, with it), `ticket_used` (admitted
                at the gate), or `not_transferable` (refunded or transferred already)'
            503:
              description: Busy, try again
        """
        body = json_body()
        customer_id = request_customer_id()
        ticket = tickets.rename(db.session, customer_id, pk, body.get("holder_name"))
        return self.response(200, result=ticket_json(ticket, customer_id))

    @expose("/<int:pk>/transfer", methods=["POST"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("transfer")
    def transfer(self, pk: int) -> Any:
        """Transfer the ticket to another customer by e-mail: its code is revoked and the
        recipient gets a new ticket (same seat, a new code) by e-mail and in their tickets.
        ---
        post:
          summary: Transfer a ticket
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [email]
                  properties:
                    email: {type: string, description: the recipient customer's e-mail}
          responses:
            200:
              description: '`{"id", "status": "transferred", "replaced_by", "to": {"name",
                "email"}}`: the ticket handed on (the new ticket and its code belong to the
                recipient)'
            400:
              description: Not a valid e-mail, or the customer's own
            404:
              description: Not found (or not the customer's)
            409:
              description: '`transfers_not_allowed`, `transfers_closed`, `ticket_used` or
                `not_transferable`'
            422:
              description: '`unknown_recipient`: no customer has this e-mail (they sign up
                first)'
            503:
              description: Busy, try again
        """
        body = json_body()
        customer_id = request_customer_id()
        new = tickets.transfer(db.session, customer_id, pk, body.get("email"))
        recipient = new.owner
        return self.response(
            200,
            result={
                "id": pk,
                "status": "transferred",
                "replaced_by": new.id,
                "to": {"name": recipient.name, "email": recipient.email},
            },
        )
