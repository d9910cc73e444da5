"""Input and errors of the JSON APIs (shop_api.py, catalog_public_api.py, orders_api.py,
waitlist_api.py, checkin_api.py): a refused business rule answered with its status, the JSON
body, the customer a request is for, a positive id."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import request
from flask_appbuilder.api import BaseApi
from flask_babel import gettext
from flask_jwt_extended import get_jwt

from app.extensions import db
from app.models import DomainError, InvalidRequest
from app.models.base import MAX_INT
from app.services import customers
from app.views.base import current_user


def domain_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Answer a refused business rule with its status and ``{"error", "message", ...}``,
    rolling back whatever the request had begun (inside FAB's ``@safe``, which would make
    any exception a 500)."""

    @functools.wraps(view)
    def wrapper(self: BaseApi, *args: Any, **kwargs: Any) -> Any:
        try:
            return view(self, *args, **kwargs)
        except DomainError as err:
            db.session.rollback()
            return self.response(err.status, **err.to_json())

    return wrapper


def json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidRequest(gettext("Send a JSON object."))
    return body


def request_customer_id() -> int:
    """The current customer's id: from the API token's claim, else looked up for the login."""
    try:
        claimed = get_jwt().get("customer_id")
    except RuntimeError:  # a browser session, not a token
        claimed = None
    if claimed:
        return int(claimed)
    return customers.customer_of(db.session, current_user()).id


def positive_id(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_INT:
        raise DomainError(
            gettext("%(field)s must be a positive integer id.", field=field), field=field
        )
    return value
