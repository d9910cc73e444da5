"""The shop's fast refusal: a WSGI layer in front of the app that answers a customer's
best-available hold in a section this process found sold out (or kept for its waiting list)
within the last second (``purchase.sold_out``) with the 409 the app would give, without Flask's
per-request work, the user's load or the database. In a flash crowd most buyers ask for a
section already gone, and each of them cost a sale's worth of a server thread
(bench/onsale.py --burst). A request with an Idempotency-Key costs one read more: asked again
after a lost answer while the spots it took are held, it goes to the app, which answers that
cart (the app reads it no later: in a sold-out section it takes no lock first either).
Anything else, chosen spots, an unknown section, a token that does not verify, a key the app
refuses, goes to the app unchanged. Refusals answered here are counted in the Prometheus request
metrics as the app's are (``fast_path.FastPath``); they skip the request-id header and the rate
limit, and come before the waiting room's 403: the section is gone for everyone."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from flask_babel import force_locale
from flask_jwt_extended import decode_token
from sqlalchemy.exc import SQLAlchemyError

from app import json_body
from app.i18n import locale_for
from app.models.base import MAX_INT, utcnow
from app.services.purchase import hold, sold_out, waitlist_line
from app.views.fast_path import FastPath
from app.views.shop_api import MAX_REQUEST_KEY, MIN_REQUEST_KEY


class SoldOutFastPath(FastPath):
    path = "/api/v1/holds/"
    endpoint = "HoldApi.post"
    max_body = 1024

    def answer(self, token: str, body: bytes, environ: dict[str, Any]) -> tuple[str, bytes] | None:
        key = environ.get("HTTP_IDEMPOTENCY_KEY")
        if key is not None:
            key = key.strip()
            if not MIN_REQUEST_KEY <= len(key) <= MAX_REQUEST_KEY:
                return None  # the app says what is wrong with it
        locale = locale_for(environ.get("HTTP_ACCEPT_LANGUAGE"))
        refusal = self._refusal(token, body, locale, key)
        return ("409 CONFLICT", refusal) if refusal is not None else None

    def _refusal(self, token: str, body: bytes, locale: str, key: str | None) -> bytes | None:
        """The app's answer to a best-available hold in a section remembered sold out, if this
        is one from a customer's valid token that is not asked again under ``key`` (its
        Idempotency-Key), in ``locale``; else None."""
        try:
            wanted = json_body.loads(body)
        except ValueError:
            return None
        if not isinstance(wanted, dict) or set(wanted) != {"event_id", "section_id", "quantity"}:
            return None
        if not all(type(v) is int and 0 < v <= MAX_INT for v in wanted.values()):
            return None
        if wanted["quantity"] > self.app.config["MAX_SPOTS_PER_EVENT"]:
            return None  # the app refuses it for the limit first
        section = sold_out.name_of(wanted["event_id"], wanted["section_id"])
        if section is None:
            return None
        with self.app.app_context(), force_locale(locale):
            try:
                claims = decode_token(token)
            except Exception:  # noqa: BLE001 - the app answers a token it refuses
                return None
            if claims.get("type") != "access" or not claims.get("customer_id"):
                return None
            if key is not None:
                try:
                    if self._asked_again(claims["customer_id"], wanted["event_id"], key):
                        return None
                except SQLAlchemyError:
                    return None  # the app answers it (503 while the database is away)
            if sold_out.waitlist_in_force(wanted["event_id"], wanted["section_id"]):
                refusal = waitlist_line.in_force(section, path="fast")
            else:
                refusal = hold.not_enough(section, 0, path="fast")
            return json.dumps(refusal.to_json()).encode()

    def _asked_again(self, customer_id: int, event_id: int, key: str) -> bool:
        """Whether spots a hold request of the customer under ``key`` took are still held (in
        an app context): one autocommitted read."""
        ids = {"customer_id": customer_id, "event_id": event_id, "request_key": key}
        with self.autocommit_engine().connect() as conn:
            return hold.taken_under_key(conn, ids | {"now": utcnow()}) is not None


def install(app: Flask) -> None:
    SoldOutFastPath.install(app)
