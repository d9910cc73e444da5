"""What every route shares about its input.

Ids: an id in a URL or a row selection is a positive integer in the id columns' range
(32-bit), and anything else names a row that does not exist: 404, never the database's
"integer out of range" or "invalid input syntax" as a 500. ``<int:...>`` routes get it from
the converter; Flask-AppBuilder's own routes take ``<pk>`` as text (show, edit, delete, the
REST API's PUT and DELETE, actions), so a guard checks those before the view runs, with the
other route arguments FAB trusts: an action's name and the file name of its upload download
(this application uploads no files).

Sessions: an API call that changes something with a browser's session cookie needs the CSRF
token.

Text: no field may hold a NUL character (PostgreSQL text cannot), and no query key may be one
of url_for's own arguments: 400.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, current_app, request, session
from werkzeug.routing import IntegerConverter, Map

from app.extensions import csrf
from app.models.base import MAX_INT


class IdConverter(IntegerConverter):
    """Flask's ``int`` converter, capped at the id columns' largest value: a larger number
    matches no route (404)."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_INT)
        super().__init__(map, *args, **kwargs)


def is_id(text: str) -> bool:
    """Whether ``text`` is an id as a URL or form carries it: ASCII digits, 1 to MAX_INT."""
    return text.isascii() and text.isdigit() and 0 < int(text) <= MAX_INT


def refuse_malformed_ids() -> None:
    """Before any view: 404 for a row id, row selection or action that cannot exist."""
    args = request.view_args or {}
    pk = args.get("pk")
    if isinstance(pk, str) and not is_id(pk):
        abort(404)
    endpoint = request.endpoint or ""
    if endpoint.endswith(".download") and "filename" in args:
        abort(404)  # FAB's download of uploaded files: there are none
    if endpoint.endswith(".action_post") and not all(
        is_id(rowid) for rowid in request.form.getlist("rowid")
    ):
        abort(404)
    if endpoint.endswith(".action") and "name" in args:
        view = getattr(current_app.view_functions.get(endpoint), "__self__", None)
        if args["name"] not in getattr(view, "actions", {}):
            abort(404)


# Gate devices' scans: the check-in API refuses every control character at its field itself.
FIELD_CHECKED_JSON = ("/api/v1/checkin/",)
NUL_REFUSED = "The request holds a NUL character (\\0), which no field may contain."


def refuse_nul_characters() -> None:
    """Before any view: 400 for a NUL character in the query, a form or a JSON body. PostgreSQL
    text cannot hold one, so a search, a login or a sign-up carrying it was a 500."""
    values = [*request.args.values(), *request.args.keys()]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        values += [*request.form.values(), *request.form.keys()]
    if any("\0" in value for value in values):
        abort(400, description=NUL_REFUSED)
    if (
        request.is_json
        and not request.path.startswith(FIELD_CHECKED_JSON)
        and b"\\u0000" in request.get_data(cache=True)
    ):
        abort(400, description=NUL_REFUSED)


# Query keys that flask.url_for takes as its own arguments: FAB's list links (sort, page, page
# size) and the shop's pager pass the query on to url_for, so "?endpoint=x" was a 500 and
# "?_external=1" made links to whatever host the request named.
URL_FOR_KEYWORDS = frozenset({"endpoint", "_anchor", "_method", "_scheme", "_external"})


def refuse_url_for_keywords() -> None:
    if not URL_FOR_KEYWORDS.isdisjoint(request.args.keys()):
        abort(400, description="Unknown query parameter.")


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def protect_api_sessions() -> None:
    """The REST API also takes a browser's session cookie (FAB's allow_browser_login): a call
    that changes something made that way needs the CSRF token, as the pages' forms do, or a
    form on another site could cancel a customer's order. A call with a bearer token carries
    no cookie to forge and needs none."""
    if (
        request.method in UNSAFE_METHODS
        and request.path.startswith("/api/")
        and "Authorization" not in request.headers
        and current_app.config.get("WTF_CSRF_ENABLED", True)
        and session.get("_user_id") is not None
    ):
        csrf.protect()


def install(app: Flask) -> None:
    """Before any route is added: the capped converter; then the guards."""
    app.url_map.converters["int"] = IdConverter
    app.before_request(refuse_malformed_ids)
    app.before_request(refuse_nul_characters)
    app.before_request(refuse_url_for_keywords)
    app.before_request(protect_api_sessions)
