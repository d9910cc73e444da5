"""The simulated acquirer's tokenization endpoint, as a provider's card form would call it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, jsonify, redirect, request
from flask_babel import gettext

from app.local_urls import is_local_path
from app.sim_acquirer.api import CardError, tokenize

bp = Blueprint("sim_acquirer", __name__, url_prefix="/sim-acquirer/v1")
# Sent back to the card form with an error, so that they need not be typed again. The number and
# the CVC never are, nor the name on the card: the redirect's address lands in access logs and
# the browser's history, and a name is personal data.
KEPT_ON_ERROR = ("exp_month", "exp_year")


@bp.post("/tokens")
def create_token() -> Any:
    """JSON in, JSON out; or an HTML form with ``return_url`` (works without JavaScript): the
    browser is sent back to our site with the token, never with the card."""
    payload = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    if not isinstance(payload, dict):
        return jsonify(error="invalid_request", message=gettext("Send a JSON object.")), 400
    return_url = request.form.get("return_url") if not request.is_json else None
    if return_url is not None and not is_local_path(return_url):
        return jsonify(error="invalid_request", field="return_url"), 400
    try:
        token = tokenize(payload)
    except CardError as err:
        if return_url is not None:
            kept = {
                f"card_{name}": payload[name][:150] for name in KEPT_ON_ERROR if payload.get(name)
            }
            query = urlencode({"card_error": err.message, "card_field": err.field} | kept)
            return redirect(f"{return_url}{'&' if '?' in return_url else '?'}{query}", 303)
        return jsonify(error="invalid_card", field=err.field, message=err.message), 422
    if return_url is not None:
        query = urlencode({f"card_{key}": value for key, value in token.items()})
        return redirect(f"{return_url}{'&' if '?' in return_url else '?'}{query}", 303)
    return jsonify(token), 201
