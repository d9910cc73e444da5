"""What every route shares about ids: an id in a URL or a row selection is a positive integer in
the id columns' range (32-bit), and anything else names a row that does not exist: 404, never
the database's "integer out of range" or "invalid input syntax" as a 500.

``<int:...>`` routes get it from the converter; Flask-AppBuilder's own routes take ``<pk>`` as
text (show, edit, delete, the REST API's PUT and DELETE, actions), so a guard checks those
before the view runs, with the other route arguments FAB trusts: an action's name and the
file name of its upload download (this application uploads no files).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, current_app, request
from werkzeug.routing import IntegerConverter, Map

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


def install(app: Flask) -> None:
    """Before any route is added: the capped converter; then the guard."""
    app.url_map.converters["int"] = IdConverter
    app.before_request(refuse_malformed_ids)
