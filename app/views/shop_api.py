"""Customer JSON API: holds, checkout and the waiting room (JWT or session); the catalogue and
sign-up are catalog_public_api.py, orders and tickets orders_api.py.

Thin: parse, call a service, serialise. Domain errors answer with their status and
``{"error", "message", ...}``; another customer's hold or order answers 404.
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask_appbuilder.api import BaseApi, expose, safe
from flask_appbuilder.security.decorators import permission_name, protect
from flask_babel import gettext

from app.extensions import db
from app.models import DomainError, InvalidRequest
from app.models.base import utcnow
from app.services import (
    customers,
    purchase,
    waiting_room,
)
from app.services.payments import gateway
from app.views.api_input import (
    domain_errors,
    json_body,
    positive_id,
    request_customer_id,
)
from app.views.guards import is_id
from app.views.shop_json import hold_json, order_json, turn_json

# The lengths of a hold request's Idempotency-Key (the column event_spot.held_request_key).
MIN_REQUEST_KEY, MAX_REQUEST_KEY = 8, 100


class HoldApi(BaseApi):
    resource_name = "holds"
    openapi_spec_tag = "Purchase"
    allow_browser_login = True

    @expose("/", methods=["POST"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("post")
    def post(self) -> Any:
        """Hold chosen spots, or the best N available in a section; a customer who holds spots
        for the event already has them added to that hold (their cart: one checkout pays all).
        ---
        post:
          summary: Hold spots (or add them to the customer's cart for the event)
          description: The customer's live hold for the event is their cart. A hold request
            while one is live adds the spots to it and answers the whole cart (same id; the
            added spots expire with it, its time does not restart); the per-customer limit
            counts the whole cart. A cart whose checkout was declined loses that unpaid order
            (the next checkout prices the whole cart); one being paid answers 409
            checkout_in_progress. Send an Idempotency-Key to ask again safely after a lost
            answer; while the spots it took are held, the same key answers the cart (200)
            and takes nothing more.
          parameters:
          - in: header
            name: Idempotency-Key
            required: false
            schema: {type: string, minLength: 8, maxLength: 100}
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [event_id]
                  properties:
                    event_id: {type: integer}
                    spot_ids: {type: array, items: {type: integer}}
                    section_id: {type: integer}
                    quantity: {type: integer, minimum: 1}
                    ticket_types:
                      type: array
                      items: {type: integer}
                      description: one ticket type id per ticket, in the order of spot_ids
                        (or quantity of them); omitted, every ticket at the section's price
                    promo_code:
                      type: string
                      description: a promo code of the event's organiser, in any case; every
                        ticket of the hold gets its discount (one use each) and it unlocks the
                        hidden (presale) section or ticket type it is for
          responses:
            201:
              description: The hold (the cart), with all its spots and expiry; each spot's
                gross_cents, discount_cents and price_cents (what checkout charges), and the
                totals gross_cents, discount_cents and total_cents
            200:
              description: The same request asked again under its Idempotency-Key, the cart
                as it is now (nothing more taken)
            400:
              description: An Idempotency-Key shorter than 8 or longer than 100 characters
            404:
              description: No such event on sale, section of it, or spot of it; or no such
                promo code (field promo_code)
            403:
              description: error waiting_room, the event has a waiting room and it is not the
                customer's turn (join the line at /api/v1/queue/event_id)
            409:
              description: '`{"error": "spots_unavailable", "spots": [...]}`, or
                `ticket_type_sold_out` (a capped type such as half price has no more left), or
                `promo_code_used_up` (the code has fewer uses `left` than tickets asked), or
                `waitlist` (sold out, the spots that come back go to its waiting list), or
                `checkout_in_progress` (the cart is being paid)'
            422:
              description: Invalid request or hold limit reached; `promo_code_refused` (the
                code is not valid now, for this event, or for these spots' section or type)
            503:
              description: Busy, try again
        """
        body = json_body()
        customer_id = request_customer_id()
        spot_ids, section_id, quantity = _hold_request(body)
        hold = purchase.hold.reserve_spots(
            db.session,
            customer_id,
            positive_id(body.get("event_id"), "event_id"),
            spot_ids=spot_ids,
            section_id=section_id,
            quantity=quantity,
            ticket_type_ids=_ticket_types(body),
            promo_code=body.get("promo_code"),
            request_key=_request_key(request.headers.get("Idempotency-Key")),
        )
        return self.response(200 if hold.replayed else 201, result=hold_json(hold, utcnow()))

    @expose("/", methods=["GET"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("get")
    def carts(self) -> Any:
        """The current customer's live holds (their carts), newest first.
        ---
        get:
          summary: List my live holds (carts)
          parameters:
          - {in: query, name: event_id, required: false, schema: {type: integer},
             description: only this event's}
          responses:
            200:
              description: '`{"result": [hold, ...]}`, each with its spots, total and time left'
            400:
              description: event_id is not a positive integer id
        """
        event_id = request.args.get("event_id")
        if event_id is not None and not is_id(event_id):
            raise InvalidRequest(gettext("event_id must be an event's id."), field="event_id")
        now = utcnow()
        holds = purchase.summary.customer_carts(
            db.session, request_customer_id(), int(event_id) if event_id else None, now
        )
        return self.response(200, result=[hold_json(h, now) for h in holds])

    @expose("/<int:pk>/spots/<int:spot_id>", methods=["DELETE"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("delete")
    def remove_spot(self, pk: int, spot_id: int) -> Any:
        """Take one spot out of a hold (the cart); its last spot releases the hold.
        ---
        delete:
          summary: Remove a spot from my cart
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          - {in: path, name: spot_id, required: true, schema: {type: integer}}
          responses:
            200:
              description: The hold as it is now (status released when it held only that spot)
            404:
              description: No such hold of the customer's, or the spot is not in it (or it
                expired)
            409:
              description: The hold is paid, or a payment for it is under way
        """
        customer_id = request_customer_id()
        hold = purchase.release.release_spot(db.session, customer_id, pk, spot_id)
        summary = purchase.summary.HoldSummary.of(db.session, hold)
        return self.response(200, result=hold_json(summary, utcnow()))

    @expose("/<int:pk>", methods=["GET"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("get")
    def get(self, pk: int) -> Any:
        """A hold of the current customer.
        ---
        get:
          summary: Show a hold
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          responses:
            200:
              description: The hold
            404:
              description: Not found (or another customer's)
        """
        customer_id = request_customer_id()
        hold = purchase.summary.get_customer_hold(db.session, customer_id, pk)
        summary = purchase.summary.HoldSummary.of(db.session, hold)
        return self.response(200, result=hold_json(summary, utcnow()))

    @expose("/<int:pk>", methods=["DELETE"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("delete")
    def delete(self, pk: int) -> Any:
        """Release a hold.
        ---
        delete:
          summary: Release a hold
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          responses:
            200:
              description: Released
            404:
              description: Not found (or another customer's)
            409:
              description: Already paid
        """
        customer_id = request_customer_id()
        hold = purchase.release.release_hold(db.session, customer_id, pk)
        return self.response(200, result={"id": hold.id, "status": hold.status})

    @expose("/<int:pk>/checkout", methods=["POST"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("checkout")
    def checkout(self, pk: int) -> Any:
        """Pay for a hold by card token; send an Idempotency-Key header.
        ---
        post:
          summary: Checkout
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          - {in: header, name: Idempotency-Key, required: true, schema: {type: string}}
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [card_token]
                  properties:
                    card_token: {type: string}
                    expected_total_cents:
                      type: integer
                      minimum: 0
                      description: The total the client showed; if the hold costs anything
                        else, nothing is charged (409 `price_changed`)
                    holder_names:
                      type: array
                      items: {type: string, maxLength: 150}
                      description: Each ticket's holder, one per spot in the order of the
                        hold's spots; required when the event's tickets are named (400
                        otherwise); by default, and for a name left blank when they are
                        not, the buyer's name
          responses:
            201:
              description: The paid order with its tickets (200 for a replayed retry), charged
                the prices the hold quoted
            402:
              description: '`{"error": "card_declined", "reason": ...}`; the hold is kept'
            404:
              description: Not found (or another customer's)
            409:
              description: 'Hold expired, or lost while paying (the charge is refunded); or
                `{"error": "price_changed", "held_total_cents", "expected_total_cents"}`:
                nothing charged, the hold kept'
            400:
              description: holder_names missing for a named event, or not one name per ticket
            422:
              description: Missing key, the key was used with a different body, or
                expected_total_cents is not a whole number of cents
        """
        body = json_body()
        customer_id = request_customer_id()
        result = purchase.checkout.checkout(
            db.session,
            gateway(),
            customer_id,
            pk,
            str(body.get("card_token") or ""),
            request.headers.get("Idempotency-Key", ""),
            body.get("expected_total_cents"),
            holder_names=body.get("holder_names"),
        )
        record = result.record or customers.order_record(db.session, customer_id, result.order_id)
        return self.response(200 if result.replayed else 201, result=order_json(record))


class QueueApi(BaseApi):
    """The waiting room of a high-demand on-sale (app/services/waiting_room.py)."""

    resource_name = "queue"
    openapi_spec_tag = "Purchase"
    allow_browser_login = True

    def _answer(self, turn: waiting_room.Turn) -> Any:
        now = utcnow()
        response = self.response(200, result=turn_json(turn, now))
        if turn.status == waiting_room.WAITING:
            response.headers["Retry-After"] = str(turn.retry_after(now))
        return response

    @expose("/<int:event_id>", methods=["POST"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("post")
    def join(self, event_id: int) -> Any:
        """Join the event's waiting room (keeping one's place if already in it).
        ---
        post:
          summary: Join the waiting room
          description: '`status` is `open` (no waiting room: hold at will), `waiting` (come back
            at `admit_at`; `Retry-After` says in how many seconds) or `admitted` (hold spots until
            `turn_ends_at`; a purchase ends the turn).'
          parameters:
          - {in: path, name: event_id, required: true, schema: {type: integer}}
          responses:
            200:
              description: The customer's turn
            404:
              description: No such public event
            409:
              description: The event is not on sale
        """
        return self._answer(waiting_room.join(db.session, request_customer_id(), event_id))

    @expose("/<int:event_id>", methods=["GET"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("get")
    def status(self, event_id: int) -> Any:
        """Where the customer stands in the event's waiting room.
        ---
        get:
          summary: My turn
          parameters:
          - {in: path, name: event_id, required: true, schema: {type: integer}}
          responses:
            200:
              description: The customer's turn (`not_in_line` if they have none)
            404:
              description: No such public event
        """
        return self._answer(waiting_room.status(db.session, request_customer_id(), event_id))

    @expose("/<int:event_id>", methods=["DELETE"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("delete")
    def leave(self, event_id: int) -> Any:
        """Leave the waiting room, or end one's turn.
        ---
        delete:
          summary: Leave the waiting room
          parameters:
          - {in: path, name: event_id, required: true, schema: {type: integer}}
          responses:
            200:
              description: Left
            404:
              description: No such public event
        """
        customer_id = request_customer_id()
        waiting_room.leave(db.session, customer_id, event_id)
        return self._answer(waiting_room.status(db.session, customer_id, event_id))


def _request_key(value: str | None) -> str | None:
    """A hold request's Idempotency-Key, if it sent one: 8 to 100 characters."""
    if value is None:
        return None
    key = value.strip()
    if not MIN_REQUEST_KEY <= len(key) <= MAX_REQUEST_KEY:
        raise InvalidRequest(
            gettext("Send an Idempotency-Key of 8 to 100 characters."), field="Idempotency-Key"
        )
    return key


def _ticket_types(body: dict[str, Any]) -> list[int] | None:
    kinds = body.get("ticket_types")
    if kinds is None:
        return None
    if not isinstance(kinds, list) or not kinds:
        raise DomainError(
            gettext("ticket_types must be a non-empty list of ids."), field="ticket_types"
        )
    return [positive_id(k, "ticket_types") for k in kinds]


def _hold_request(body: dict[str, Any]) -> tuple[list[int] | None, int | None, int | None]:
    spot_ids = body.get("spot_ids")
    if spot_ids is not None:
        if not isinstance(spot_ids, list) or not spot_ids:
            raise DomainError(
                gettext("spot_ids must be a non-empty list of integers."), field="spot_ids"
            )
        return [positive_id(s, "spot_ids") for s in spot_ids], None, None
    section_id = positive_id(body.get("section_id"), "section_id")
    quantity = positive_id(body.get("quantity"), "quantity")
    return None, section_id, quantity
