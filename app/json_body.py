"""What a JSON body may be, wherever one is read: by Flask (``request.get_json``, through the
app's JSON provider, ``app/views/guards.py``) and by the WSGI fast paths, which parse before
Flask.

Two things valid JSON can hold that nothing here can use, both refused as unreadable:

- nesting deeper than Python's parser recurses (``[`` 50,000 times raises RecursionError);
- a lone surrogate (``"\\ud800"``): a JSON escape but no character, which neither PostgreSQL
  nor Redis can store (encoding it to UTF-8 raises).

A valid pair (``"\\ud83d\\ude00"``) is one character once parsed, and passes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask_babel import gettext

_SURROGATE = re.compile("[\ud800-\udfff]")


class UnreadableJson(ValueError):
    """JSON that parses, or would, into something no field can take; ``field`` names where (a
    path such as ``scans[0].code``) when it is known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def loads(data: bytes | bytearray | str, **kwargs: Any) -> Any:
    """``json.loads``, raising UnreadableJson (a ValueError, as malformed JSON raises) for what
    the module docstring lists."""
    try:
        value = json.loads(data, **kwargs)
    except RecursionError:
        raise UnreadableJson(gettext("The JSON body nests too deeply.")) from None
    # Cheap, on the raw body (the scan fast path parses here): a surrogate comes from an
    # escape, or from bytes that are not ASCII (json.loads decodes with "surrogatepass").
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if b"\\" in data or not data.isascii():
        where = lone_surrogate_at(value)
        if where is not None:
            raise UnreadableJson(
                gettext(
                    "%(where)s holds a lone surrogate (\\ud800 to \\udfff), which is not a "
                    "character.",
                    where=where or gettext("The body"),
                ),
                field=where or None,
            )
    return value


def lone_surrogate_at(value: Any) -> str | None:
    """Where in parsed JSON a string holds a surrogate: the value's path (the object's, for a
    key), "" for the whole body; None when there is none."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if _SURROGATE.search(key):
                    return path  # the object holding the key
                stack.append((f"{path}.{key}" if path else key, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
    return None
