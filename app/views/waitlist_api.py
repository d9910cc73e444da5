"""Customer JSON API: the waiting lists of sold-out events (join, see one's place or offer,
leave), JWT or session. Thin, as shop_api.py: parse, call a service, serialise.
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask_appbuilder.api import BaseApi, expose, safe
from flask_appbuilder.security.decorators import permission_name, protect
from flask_babel import gettext

from app.extensions import db
from app.models import DomainError, InvalidRequest
from app.services import waitlist
from app.views.api_input import (
    domain_errors,
    positive_id,
    request_customer_id,
)
from app.views.guards import is_id
from app.views.shop_json import waitlist_json


class WaitlistApi(BaseApi):
    """The waiting lists of sold-out events (app/services/waitlist.py)."""

    resource_name = "waitlist"
    openapi_spec_tag = "Purchase"
    allow_browser_login = True

    @expose("/", methods=["GET"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("get")
    def mine(self) -> Any:
        """The customer's waiting-list entries, newest first.
        ---
        get:
          summary: My waiting-list entries
          description: '`status` is `waiting` (`position` 1 is next), `offered` (spots are on
            hold for the customer: the hold `hold_id`, paid as any hold until
            `offer_expires_at`), `converted` (paid), `expired` (the offer went unclaimed) or
            `left`.'
          responses:
            200:
              description: The entries
        """
        places = waitlist.places_of(db.session, request_customer_id())
        return self.response(200, result=[waitlist_json(p) for p in places])

    @expose("/<int:event_id>", methods=["POST"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("post")
    def join(self, event_id: int) -> Any:
        """Join a sold-out event's waiting list (answering the entry one has, if any).
        ---
        post:
          summary: Join the waiting list
          description: When spots come back they are offered in order of joining, as a hold
            for the customer lasting the event's offer window, announced by e-mail; while
            anyone waits for a section, ordinary holds in it answer 409 `waitlist`.
          parameters:
          - {in: path, name: event_id, required: true, schema: {type: integer}}
          requestBody:
            required: false
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    section_id:
                      type: integer
                      description: the section waited for; omitted, any section of the event
                    ticket_type_id:
                      type: integer
                      description: a ticket type (its section's), whose price the offer quotes
                    quantity:
                      type: integer
                      minimum: 1
                      description: how many spots (1 by default, at most the per-customer
                        limit)
          responses:
            201:
              description: Joined; the entry with its position
            200:
              description: Already in that list; the entry as it stands
            400:
              description: Not a JSON object
            404:
              description: No such public event, or section or ticket type of it
            409:
              description: '`spots_on_sale` (buy them instead), or the event is not on sale'
            422:
              description: A field is invalid (`field` names it)
        """
        body = request.get_json(silent=True) if request.content_length else {}
        if not isinstance(body, dict):
            raise InvalidRequest(gettext("Send a JSON object."))
        section_id, type_id = body.get("section_id"), body.get("ticket_type_id")
        place = waitlist.join(
            db.session,
            request_customer_id(),
            event_id,
            section_id=None if section_id is None else positive_id(section_id, "section_id"),
            ticket_type_id=None if type_id is None else positive_id(type_id, "ticket_type_id"),
            quantity=positive_id(body.get("quantity", 1), "quantity"),
        )
        return self.response(201 if place.created else 200, result=waitlist_json(place))

    @expose("/<int:event_id>", methods=["DELETE"])
    @protect(allow_browser_login=True)
    @safe
    @domain_errors
    @permission_name("delete")
    def leave(self, event_id: int) -> Any:
        """Leave the event's waiting list (an offer on hold is released to the next in line).
        ---
        delete:
          summary: Leave the waiting list
          parameters:
          - {in: path, name: event_id, required: true, schema: {type: integer}}
          - in: query
            name: section_id
            required: false
            schema: {type: integer}
            description: only the entry for this section; omitted, every entry of the event
          responses:
            200:
              description: The entries ended
            404:
              description: Not in this event's waiting list
            422:
              description: section_id is not an id
        """
        section = request.args.get("section_id")
        section_id = None
        if section is not None:
            if not is_id(section):
                raise DomainError(
                    gettext("%(field)s must be a positive integer id.", field="section_id"),
                    field="section_id",
                )
            section_id = int(section)
        ended = waitlist.leave(db.session, request_customer_id(), event_id, section_id=section_id)
        return self.response(
            200, result=[waitlist_json(waitlist.Place(entry, None)) for entry in ended]
        )
