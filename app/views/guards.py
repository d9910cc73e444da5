"""What every route shares about its input.

Size: each route family reads at most so many bytes of body (``BODY_LIMITS``); more is a 413
before anything is parsed.

Ids: an id in a URL or a row selection is a positive integer in the id columns' range
(32-bit), written in ASCII digits, and anything else names a row that does not exist: 404,
never the database's "integer out of range" or "invalid input syntax" as a 500. ``<int:...>``
routes get it from the converter; Flask-AppBuilder's own routes take ``<pk>`` as text (show,
edit, delete, the REST API's PUT and DELETE, actions), so a guard checks those before the view
runs, with the other route arguments FAB trusts: an action's name and the file name of its
upload download (this application uploads no files).

JSON: a body is parsed once, here, by the app's JSON provider (``app/json_body.py``): nesting
too deep for the parser or a lone surrogate answers 400 ``invalid_json`` naming the field.

Sessions: an API call that changes something with a browser's session cookie needs the CSRF
token, unless it carries a bearer token that verifies, of the same user.

Text: no field or header may hold a NUL character (PostgreSQL text cannot), and no query key
may be one of url_for's own arguments: 400. A dashboard list's page, page size and filter in
the address are checked against the view before FAB reads them with ``int()`` and indexes.
"""

from __future__ import annotations

import re
from typing import Any

from flask import (
    Flask,
    Request,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    request,
    session,
    url_for,
)
from flask.json.provider import DefaultJSONProvider
from flask_appbuilder.baseviews import BaseCRUDView
from flask_babel import gettext
from flask_jwt_extended import get_jwt_identity, verify_jwt_in_request
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter, Map

from app import json_body
from app.extensions import csrf
from app.i18n import N_
from app.models.base import MAX_INT

KB = 1024
#: The most bytes of body each route family reads (first matching path prefix), else the
#: app's MAX_CONTENT_LENGTH (the dashboards' forms). A gate's scan and every step of a
#: purchase (logins, sign-up, hold, checkout, card token) fit in a few hundred bytes; offline
#: uploads carry up to 5,000 scans (the gate page sends 200 at a time); the partner API an
#: event with its description.
SCAN_BODY_LIMIT = 4 * KB
BODY_LIMITS = (
    ("/api/v1/checkin/offline-scans", 2048 * KB),
    ("/api/v1/checkin/", SCAN_BODY_LIMIT),
    ("/api/v1/holds/", 4 * KB),
    ("/api/v1/orders/", 4 * KB),
    ("/api/v1/customers/", 4 * KB),
    ("/api/v1/queue/", 4 * KB),
    ("/api/v1/security/", 4 * KB),
    ("/sim-acquirer/", 4 * KB),
    ("/api/", 64 * KB),
    # The shop's forms, and the dashboard's login.
    ("/events/", 16 * KB),
    ("/holds/", 16 * KB),
    ("/orders/", 16 * KB),
    ("/signup", 16 * KB),
    ("/password-reset", 16 * KB),
    ("/confirm-email/", 16 * KB),
    ("/login/", 16 * KB),
)
#: Paths whose errors are answered as JSON (the check-in and purchase APIs, the acquirer's).
JSON_PATHS = ("/api/", "/sim-acquirer/")


def body_limit(path: str) -> int | None:
    """The limit of the family ``path`` belongs to (None: the app's MAX_CONTENT_LENGTH)."""
    for prefix, limit in BODY_LIMITS:
        if path.startswith(prefix):
            return limit
    return None


def limit_body_size() -> None:
    """Before anything reads the body: its family's limit, 413 past it. A body without a length
    (chunked) is cut at the limit as it is read, with the same 413."""
    limit = body_limit(request.path) or current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is None:
        return
    request.max_content_length = limit
    if request.content_length is None and request.environ.get("wsgi.input_terminated"):
        # Without a length, werkzeug stops reading at the limit without a word: one byte more
        # tells a body past it (read here once, kept for the view).
        request.max_content_length = limit + 1
        too_large = len(request.get_data(cache=True)) > limit
    else:
        too_large = (request.content_length or 0) > limit
    if too_large:
        abort(
            413, description=gettext("The request body is larger than %(kb)s KB.", kb=limit // KB)
        )


class IdConverter(IntegerConverter):
    """Flask's ``int`` converter in ASCII digits (Python's ``\\d`` and ``int()`` also take
    "\uff11", a full-width 1), capped at the id columns' largest value: anything else matches
    no route (404)."""

    regex = r"[0-9]+"

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
NUL_REFUSED = N_("The request holds a NUL character (\\0), which no field may contain.")


class CheckedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, parsed by ``json_body.loads``: whatever reads a body (``get_json``,
    ``request.json``) gets a ValueError, as for malformed JSON, for what it refuses."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return json_body.loads(s, **kwargs)


class UnreadableBody(BadRequest):
    """A 400 for JSON that ``json_body`` refused, with the field it names."""

    def __init__(self, error: json_body.UnreadableJson) -> None:
        super().__init__(error.message)
        self.field = error.field


class CheckedRequest(Request):
    """Flask's request, failing ``get_json()`` with UnreadableBody for what ``json_body``
    refused (a plain 400 for malformed JSON, as before)."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if isinstance(e, json_body.UnreadableJson):
            raise UnreadableBody(e)
        return super().on_json_loading_failed(e)


def refuse_unreadable_json() -> Any:
    """Before any view: a JSON body is parsed here (the view reads it from the request's cache)
    and one the parser cannot take answers 400 naming the field. Malformed JSON is left to the
    view, which answers it as its API documents."""
    if not request.is_json:
        return None
    try:
        request.get_json()
    except UnreadableBody as exc:
        body = {"error": "invalid_json", "message": exc.description}
        return jsonify(body | ({"field": exc.field} if exc.field else {})), 400
    except BadRequest:
        pass
    return None


def refuse_nul_characters() -> None:
    """Before any view: 400 for a NUL character in the query, a header, a form or a JSON body.
    PostgreSQL text cannot hold one, so a search, a login, a sign-up or an Idempotency-Key
    carrying it was a 500."""
    values = [*request.args.values(), *request.args.keys(), *request.headers.values()]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        values += [*request.form.values(), *request.form.keys()]
    if any("\0" in value for value in values):
        abort(400, description=gettext(NUL_REFUSED))
    if (
        request.is_json
        and not request.path.startswith(FIELD_CHECKED_JSON)
        and b"\\u0000" in request.get_data(cache=True)
    ):
        abort(400, description=gettext(NUL_REFUSED))


# Query keys that flask.url_for takes as its own arguments: FAB's list links (sort, page, page
# size) and the shop's pager pass the query on to url_for, so "?endpoint=x" was a 500 and
# "?_external=1" made links to whatever host the request named.
URL_FOR_KEYWORDS = frozenset({"endpoint", "_anchor", "_method", "_scheme", "_external"})


def refuse_url_for_keywords() -> None:
    if not URL_FOR_KEYWORDS.isdisjoint(request.args.keys()):
        abort(400, description=gettext("Unknown query parameter."))


# FAB reads a list's address with int() (page, page size), indexes a column's filters by the
# digit after _flt_, and hands the order column to the database (urltools, anywhere in a key).
_PAGE_ARG = re.compile("p(?:age|size)_")
_FILTER_ARG = re.compile(r"_flt_(\d)_(.*)")
_ORDER_ARG = re.compile("_oc_(.*)")
_PAGE_NUMBER = re.compile("[0-9]{1,9}")
LIST_ADDRESS_REFUSED = "A filter, order or page in the address is not valid: the whole list."


def refuse_bad_list_arguments() -> Any:
    """Before a dashboard view (FAB's own too: roles, permissions): a page or page size that is
    not a number from 0, a filter past the column's last or an order column the list does not
    offer shows the whole list with a warning, instead of FAB's 500."""
    if not request.args:
        return None
    view = getattr(current_app.view_functions.get(request.endpoint or ""), "__self__", None)
    if not isinstance(view, BaseCRUDView):
        return None
    if not any(_bad_list_argument(view, key, value) for key, value in request.args.items()):
        return None
    flash(LIST_ADDRESS_REFUSED, "warning")
    if (request.endpoint or "").endswith(".export_csv"):
        return redirect(url_for(f"{view.endpoint}.list"))
    return redirect(request.path)


def _bad_list_argument(view: BaseCRUDView, key: str, value: str) -> bool:
    if _PAGE_ARG.search(key):
        return not _PAGE_NUMBER.fullmatch(value)
    if flt := _FILTER_ARG.search(key):
        column = flt[2]
        return column in view._filters.get_search_filters() and int(flt[1]) >= len(
            view._filters._all_filters.get(column, ())
        )
    if order := _ORDER_ARG.search(key):
        # The list's own view, or one of a row page's related lists, by class name.
        named = {type(v).__name__: v for v in (view, *(view._related_views or ()))}
        listed = named.get(order[1])
        return listed is not None and value not in listed.order_columns
    return False


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Authenticated by their bearer token only (device tokens included), never by the session.
BEARER_ONLY_PATHS = ("/api/v1/checkin/", "/api/v1/security/")


def protect_api_sessions() -> None:
    """The REST API also takes a browser's session cookie (FAB's allow_browser_login): a call
    that changes something made that way needs the CSRF token, as the pages' forms do, or a
    form on another site could cancel a customer's order. Only a bearer token that verifies,
    of the session's own user, stands in for it: any Authorization header did ("x", "Basic
    ...", empty), and FAB then acted as the cookie's user."""
    if (
        request.method in UNSAFE_METHODS
        and request.path.startswith("/api/")
        and not request.path.startswith(BEARER_ONLY_PATHS)
        and current_app.config.get("WTF_CSRF_ENABLED", True)
        and session.get("_user_id") is not None
        and not _bearer_of(session["_user_id"])
    ):
        csrf.protect()


def _bearer_of(user_id: Any) -> bool:
    """Whether the request carries a valid access token of ``user_id``."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer ":
        return False
    try:
        verify_jwt_in_request()
    except Exception:  # noqa: BLE001 - any token that does not verify stands for nothing
        return False
    return str(get_jwt_identity()) == str(user_id)


def install(app: Flask) -> None:
    """Before any route is added: the JSON parser, the capped converter; then the guards,
    the body's size first."""
    app.json = CheckedJSONProvider(app)
    app.request_class = CheckedRequest
    app.url_map.converters["int"] = IdConverter
    app.before_request(limit_body_size)
    app.before_request(refuse_malformed_ids)
    app.before_request(refuse_unreadable_json)
    app.before_request(refuse_nul_characters)
    app.before_request(refuse_url_for_keywords)
    app.before_request(refuse_bad_list_arguments)
    app.before_request(protect_api_sessions)
