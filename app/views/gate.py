"""The offline gate page (ARCHITECTURE.md, "The scan path"): gate staff or a gate device sign in,
download an event's manifest, then validate ticket codes in the browser with no network.

The page is public: it asks for credentials itself and talks only to the check-in API. Its
service worker keeps the page's files cached so that it also reopens offline.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, make_response, render_template, url_for
from flask_babel import gettext

from app.i18n import N_

bp = Blueprint("gate", __name__, template_folder="../templates", url_prefix="/gate")

_STATIC_FILES = (
    "gate.js",
    "gate-core.js",
    "gate-store.js",
    "gate-verdict.js",
    "gate-hardware.js",
    "gate-i18n.js",
    "gate.css",
    "vendor/jsQR-1.4.0.js",
)
_TEMPLATES = ("gate/index.html", "gate/sw.js")
# What the page's scripts show (their t("...")), translated into the page's language:
# tests/unit/test_translations.py checks that every t("...") of the scripts is here.
SCRIPT_TEXTS = (
    N_("%(type)s: check the document"),
    N_("Half price"),
    N_("%(count)s refused by the server: not recorded, see the scans below."),
    N_("%(count)s scans are not uploaded yet. They stay on this device. Sign out?"),
    N_("%(count)s scans kept on this device."),
    N_("%(revoked)s revoked · %(entries)s entries · check-in %(window)s"),
    N_("All scans uploaded."),
    N_("Already entered"),
    N_("Already used"),
    N_("Camera unavailable: %(reason)s"),
    N_("Check-in closed %(time)s"),
    N_("Check-in opens %(time)s"),
    N_("Could not check codes (%(reason)s): refresh the manifest."),
    N_("Entered %(time)s at %(gate)s"),
    N_("Exit recorded"),
    N_("Gate"),
    N_("Gate 1"),
    N_("In"),
    N_("Invalid"),
    N_("Loading…"),
    N_("Manifest not refreshed: %(reason)s"),
    N_("No connection to the server."),
    N_("No events to check in."),
    N_("Not a genuine ticket code"),
    N_("Not inside: no entry to exit"),
    N_("Not signed in: %(reason)s"),
    N_("Not uploaded yet: %(reason)s"),
    N_("Not valid now"),
    N_("Offline: they upload when the network is back."),
    N_("Out"),
    N_("Point the camera at the ticket"),
    N_("QR decoder not loaded"),
    N_("Revoked"),
    N_("Scans are checked on this device until you sign in again."),
    N_("Showing the events downloaded earlier."),
    N_("Start camera"),
    N_("Starting…"),
    N_("Stop camera"),
    N_("This device's clock is %(minutes)s min ahead of the server: set it right."),
    N_("This device's clock is %(minutes)s min behind the server: set it right."),
    N_("Ticket cancelled or refunded"),
    N_("Ticket for another event"),
    N_("Ticket for another event (#%(id)s)"),
    N_("Upload refused: sign in again to upload them."),
    N_("Uploading…"),
    N_("Valid"),
    N_("Welcome"),
    N_("Wrong event"),
    N_("Wrong login or password."),
    N_("armed"),
    N_("conflict"),
    N_("manifest on this device"),
    N_("needs attention: refused by the server"),
    N_("offline"),
    N_("online"),
    N_("pending"),
    N_("re-entry allowed"),
    N_("uploaded"),
)


@bp.get("/")
def index() -> Any:
    strings = {text: gettext(text) for text in SCRIPT_TEXTS}
    return render_template("gate/index.html", strings=strings)


@bp.get("/sw.js")
def service_worker() -> Any:
    """The service worker, served from /gate/ so that it may control the page."""
    shell = [url_for(".index"), *(url_for("static", filename=name) for name in _STATIC_FILES)]
    response = make_response(render_template("gate/sw.js", version=_version(), shell=shell))
    response.mimetype = "text/javascript"
    # The browser compares the worker byte for byte to find a new version: never serve it stale.
    response.headers["Cache-Control"] = "no-cache"
    return response


def _version() -> str:
    """A digest of every file the worker caches, so that any change installs it again."""
    static = Path(current_app.static_folder or "")
    templates = Path(bp.root_path, bp.template_folder or "")
    digest = hashlib.sha256()
    for path in [*(static / name for name in _STATIC_FILES), *(templates / t for t in _TEMPLATES)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
