"""The reader's locale: the one place that decides how money, numbers and dates read.

``current_locale()`` answers, in order: a locale chosen for this request (``flask.g.locale``,
which the language switcher of the translation work sets), the request's ``Accept-Language``
among the locales we speak, else the configured ``DEFAULT_LOCALE`` (pt_BR). Outside a request
(tasks, the CLI) it is the configured default. Formatting goes through Babel
(``app/models/money.py`` for money; ``format_datetime`` below for dates).
"""

from __future__ import annotations

import datetime as dt

from babel.dates import format_datetime as babel_format_datetime
from flask import current_app, g, has_app_context, has_request_context, request

# The locales the platform speaks, the default first.
LOCALES = ("pt_BR", "en")
DEFAULT_LOCALE = LOCALES[0]


def current_locale() -> str:
    """The locale of whoever reads what is being written now ("pt_BR" or "en")."""
    if has_request_context():
        chosen = g.get("locale")
        if chosen in LOCALES:
            return chosen
        # werkzeug matches "pt-BR" to "pt_BR" and "en-US" to "en"
        accepted = request.accept_languages.best_match(LOCALES)
        if accepted:
            return accepted
    if has_app_context():
        return current_app.config.get("DEFAULT_LOCALE", DEFAULT_LOCALE)
    return DEFAULT_LOCALE


def format_datetime(moment: dt.datetime | None, locale: str | None = None) -> str:
    """A date and time as people of the locale write it: pt_BR "26/12/2026 21:00", en
    "12/26/2026, 9:00 PM". The moment is shown as given (time zones are the caller's)."""
    if moment is None:
        return ""
    locale = locale or current_locale()
    pattern = "dd/MM/yyyy HH:mm" if locale.startswith("pt") else "MM/dd/yyyy, h:mm a"
    return babel_format_datetime(moment, pattern, tzinfo=None, locale=locale)
