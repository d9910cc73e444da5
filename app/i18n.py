"""Languages: Brazilian Portuguese (the default) and English.

Flask-Babel, set up by Flask-AppBuilder (its BabelManager), with our catalog in
app/translations/ merged over FAB's own. The msgids are English; pt_BR translates them and
English needs no catalog. A request's language is, in order: the one picked with the switcher
(kept in the session), the one a signed-in user picked before (``ab_user.locale``), the best of
the browser's Accept-Language, else pt_BR. Outside a request (Celery tasks, the CLI) it is the
default, unless a caller forces one (``flask_babel.force_locale``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_datetime as babel_format_datetime
from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    has_request_context,
    redirect,
    request,
    session,
)
from flask_babel import get_babel, get_locale, lazy_gettext, refresh
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

DEFAULT_LOCALE = "pt_BR"
# The locales the platform speaks, the default first (DEFAULT_LOCALE setting: config.py).
LOCALES = ("pt_BR", "en")
TRANSLATIONS = Path(__file__).parent / "translations"  # our catalog (make translations)
# Flask-AppBuilder's LANGUAGES: its language menu lists these (flags are its CSS classes).
LANGUAGES: dict[str, dict[str, str]] = {
    "pt_BR": {"flag": "br", "name": "Português (Brasil)"},
    "en": {"flag": "us", "name": "English"},
}
SESSION_KEY = "locale"  # FAB's own /lang/<locale> view writes the same key


def N_(text: str) -> str:
    """Marks ``text`` for the catalog without translating it here (it is translated where it is
    shown)."""
    return text


bp = Blueprint("i18n", __name__)

# Flask-AppBuilder's texts whose pt_BR its compiled catalog gets wrong (its .mo is older than its
# .po: "Sign In" reads "Registrar", register): ours, merged over FAB's, says them right.
FAB_CORRECTIONS = (
    N_("Sign In"),
    N_("Invalid login. Please try again."),
    N_("Record Count"),
    N_("Password Changed"),
    N_("Not a valid choice"),
    N_("Start with"),
)

# What a status reads as (orders, tickets, payments, holds: each of them masculine in Portuguese,
# "pedido", "ingresso", "pagamento"); the stored value stays English.
STATUS_NAMES = {
    "pending": lazy_gettext("pending"),
    "paid": lazy_gettext("paid"),
    "cancelled": lazy_gettext("cancelled"),
    "refunded": lazy_gettext("refunded"),
    "captured": lazy_gettext("captured"),
    "declined": lazy_gettext("declined"),
    "failed": lazy_gettext("failed"),
    "valid": lazy_gettext("valid"),
    "revoked": lazy_gettext("revoked"),
    "transferred": lazy_gettext("transferred"),
    "void": lazy_gettext("void"),
    "active": lazy_gettext("active"),
    "converted": lazy_gettext("converted"),
    "released": lazy_gettext("released"),
    "expired": lazy_gettext("expired"),
}


def status_name(status: object) -> str:
    """A stored status in the reader's language ("paid": "pago")."""
    key = str(getattr(status, "value", status))
    return str(STATUS_NAMES.get(key, key))


def current_locale() -> str:
    """The language texts are written in now: "pt_BR" or "en" (the request's, or the default
    outside one)."""
    try:
        locale = get_locale()
    except RuntimeError:  # no app context at all
        locale = None
    except KeyError:  # an app without Flask-Babel (a bare app in a test, a script)
        return _without_babel()
    if locale is None:
        return DEFAULT_LOCALE
    name = str(locale)
    return name if name in LANGUAGES else DEFAULT_LOCALE


def _without_babel() -> str:
    """The locale where Flask-Babel is not set up: one chosen for the request (``g.locale``),
    else the best of Accept-Language, else the configured default."""
    if has_request_context():
        chosen = g.get("locale")
        if chosen in LANGUAGES:
            return str(chosen)
        accepted = request.accept_languages.best_match(list(LANGUAGES))
        if accepted:
            return accepted
    return str(current_app.config.get("DEFAULT_LOCALE", DEFAULT_LOCALE))


def format_datetime(moment: dt.datetime | None, locale: str | None = None) -> str:
    """A date and time as people of the locale write it: pt_BR "26/12/2026 21:00", en
    "12/26/2026, 9:00 PM". The moment is shown as given (time zones are the caller's:
    app/models/local_time.py for an event's)."""
    if moment is None:
        return ""
    locale = locale or current_locale()
    pattern = "dd/MM/yyyy HH:mm" if locale.startswith("pt") else "MM/dd/yyyy, h:mm a"
    return babel_format_datetime(moment, pattern, tzinfo=None, locale=locale)


def html_lang() -> str:
    """The current language as an HTML lang attribute: "pt-BR", "en"."""
    return current_locale().replace("_", "-")


def select_locale() -> str:
    """Flask-Babel's locale selector (FAB's would store the default in every session, and never
    read Accept-Language)."""
    if not has_request_context():
        return current_app.config.get("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    chosen = session.get(SESSION_KEY)
    if chosen in LANGUAGES:
        return str(chosen)
    saved = getattr(g.get("user"), "locale", None)
    if saved in LANGUAGES:
        return str(saved)
    best = request.accept_languages.best_match(list(LANGUAGES))
    return best or current_app.config.get("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)


def locale_for(accept_language: str | None) -> str:
    """The best of an Accept-Language header among ours, else the default: for the WSGI fast
    paths, which answer before Flask has a request."""
    accepted = parse_accept_header(accept_language or "", LanguageAccept)
    return accepted.best_match(list(LANGUAGES)) or DEFAULT_LOCALE


def language_links() -> list[dict[str, Any]]:
    """The switcher's entries: each language, its link back to this page, whether current."""
    here = request.full_path.rstrip("?") if has_request_context() else "/"
    now = current_locale()
    return [
        {
            "code": code,
            "name": spec["name"],
            "lang": code.replace("_", "-"),
            "current": code == now,
            "url": f"/language/{code}?{urlencode({'next': here})}",
        }
        for code, spec in LANGUAGES.items()
    ]


@bp.get("/language/<locale>")
def switch(locale: str) -> Any:
    """The switcher: the language for this session and, for a signed-in user, the next ones;
    then back to the page (a local path only)."""
    from app.local_urls import is_local_path

    if locale not in LANGUAGES:
        locale = DEFAULT_LOCALE
    session[SESSION_KEY] = locale
    _remember_for_user(locale)
    refresh()
    back = request.args.get("next") or request.referrer or "/"
    if not is_local_path(back):
        back = "/"
    return redirect(back)


def _remember_for_user(locale: str) -> None:
    user = g.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return
    from app.extensions import db
    from app.models import PartnerUser

    if getattr(user, "locale", None) != locale:
        db.session.execute(
            PartnerUser.__table__.update()
            .where(PartnerUser.__table__.c.id == user.id)
            .values(locale=locale)
        )
        db.session.commit()


def _forget_chosen_language() -> None:
    refresh()


def configure(app: Flask) -> None:
    """Before AppBuilder: the languages, the default and our catalog's directory."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", app.config.get("DEFAULT_LOCALE", DEFAULT_LOCALE))
    app.config.setdefault("LANGUAGES", LANGUAGES)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")


def install(app: Flask) -> None:
    """After AppBuilder: our locale selector, the switcher and the templates' helpers."""
    get_babel(app).locale_selector = select_locale
    # First of all: each request chooses afresh (a language chosen before it, in the same app
    # context, by a WSGI fast path that handed the request on, is not kept).
    app.before_request_funcs.setdefault(None, []).insert(0, _forget_chosen_language)
    app.register_blueprint(bp)
    app.jinja_env.filters["status"] = status_name
    app.jinja_env.globals.update(
        current_locale=current_locale, html_lang=html_lang, language_links=language_links
    )
