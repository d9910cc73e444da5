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

bp = Blueprint("gate", __name__, template_folder="../templates", url_prefix="/gate")

_STATIC_FILES = (
    "gate.js",
    "gate-core.js",
    "gate-store.js",
    "gate-verdict.js",
    "gate-hardware.js",
    "gate.css",
    "vendor/jsQR-1.4.0.js",
)
_TEMPLATES = ("gate/index.html", "gate/sw.js")


@bp.get("/")
def index() -> Any:
    return render_template("gate/index.html")


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
