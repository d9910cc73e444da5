"""The customer JSON API's public part: the catalogue (no login needed) and signing up. Thin,
as shop_api.py: parse, call a service, serialise."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask_appbuilder.api import BaseApi, expose, safe
from flask_babel import gettext

from app.extensions import db
from app.models import InvalidRequest
from app.models.base import utcnow
from app.services import catalog, customers, promos
from app.views.api_input import domain_errors, json_body
from app.views.guards import is_id
from app.views.shop_json import event_json


class CatalogApi(BaseApi):
    """Public: no login needed."""

    resource_name = "catalog"
    openapi_spec_tag = "Catalog"

    @expose("/events", methods=["GET"])
    @safe
    @domain_errors
    def events(self) -> Any:
        """Search events on sale.
        ---
        get:
          summary: Search published events whose sales are open
          parameters:
          - in: query
            name: q
            schema: {type: string}
            description: words to find, in any case, with or without accents
          - in: query
            name: city
            schema: {type: string}
            description: a city in any spelling ("sao paulo" is "São Paulo")
          - {in: query, name: category, schema: {type: string}}
          - {in: query, name: date_from, schema: {type: string, format: date}}
          - {in: query, name: date_to, schema: {type: string, format: date}}
          - {in: query, name: price_min, schema: {type: string}, description: '150.00 or 150,00'}
          - {in: query, name: price_max, schema: {type: string}}
          - {in: query, name: page, schema: {type: integer, minimum: 1}}
          responses:
            200:
              description: A page of events
            422:
              description: A filter is invalid
        """
        page = catalog.search_events(db.session, catalog.search_from_args(request.args))
        return self.response(
            200,
            result=[event_json(e) for e in page.events],
            count=page.total,
            page=page.page,
            pages=page.pages,
        )

    @expose("/events/<int:event_id>", methods=["GET"])
    @safe
    @domain_errors
    def event(self, event_id: int) -> Any:
        """One event with its sections, prices and availability counts.
        ---
        get:
          summary: An event with sections, prices and availability
          parameters:
          - {in: path, name: event_id, required: true, schema: {type: integer}}
          - in: query
            name: code
            schema: {type: string}
            description: a promo code; the sections and types it applies to carry
              promo_price_cents, and the hidden (presale) ones it unlocks are listed
          responses:
            200:
              description: The event
            404:
              description: No such public event, or promo code (field promo_code)
            422:
              description: promo_code_refused, the code is not valid now or for this event
        """
        event = catalog.public_event(db.session, event_id)
        now = utcnow()
        typed = request.args.get("code")
        promo = promos.code_for_event(db.session, event, typed[:100], now) if typed else None
        body = event_json(event)
        body["on_sale"] = event.is_on_sale(now)
        body["waiting_room"] = event.waiting_room_per_minute is not None
        body["sections"] = catalog.section_availability(db.session, event.id, now, promo)
        return self.response(200, result=body)

    @expose("/events/<int:event_id>/spots", methods=["GET"])
    @safe
    @domain_errors
    def spots(self, event_id: int) -> Any:
        """Compact availability of every spot (optionally one section).
        ---
        get:
          summary: Seat map availability
          description: Per section, parallel arrays `ids`, `rows`, `seats` and a `status` string
            with one character per spot (0 available, 1 held, 2 sold, 3 blocked).
          parameters:
          - {in: path, name: event_id, required: true, schema: {type: integer}}
          - {in: query, name: section_id, schema: {type: integer}}
          responses:
            200:
              description: The seat map
            404:
              description: No such public event
        """
        section_id = request.args.get("section_id")
        if section_id is not None and not is_id(section_id):
            raise InvalidRequest(gettext("section_id must be a section's id."), field="section_id")
        section = int(section_id) if section_id is not None else None
        return self.response(200, **catalog.spot_map(db.session, event_id, section))


class CustomerApi(BaseApi):
    resource_name = "customers"
    openapi_spec_tag = "Customers"

    @expose("/", methods=["POST"])
    @safe
    @domain_errors
    def sign_up(self) -> Any:
        """Create a customer account; the email is the login.
        ---
        post:
          summary: Sign up
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [name, email, password]
                  properties:
                    name: {type: string}
                    email: {type: string}
                    password:
                      type: string
                      minLength: 8
                      maxLength: 128
                      description: Not easy to guess (common passwords, words, names,
                        repeats and keyboard runs are refused with 422 weak_password)
          responses:
            201:
              description: Created
            409:
              description: The email already has an account
            422:
              description: A field is invalid
        """
        body = json_body()
        customer = customers.sign_up(
            db.session,
            current_app.appbuilder.sm,
            str(body.get("name") or ""),
            str(body.get("email") or ""),
            str(body.get("password") or ""),
        )
        return self.response(201, id=customer.id, name=customer.name, email=customer.email)
