"""End-to-end fixtures: a live server on the test database and a real Chromium page.

The live server is a second app built on the same database as the session ``app`` fixture,
with CSRF enabled, served by werkzeug in a daemon thread. Browser tests drive Debian's Chromium
through Playwright (never a downloaded browser).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.extensions import db
from tests.support.apps import config_for_tests
from tests.support.browser import BROWSER_TIMEOUT_MS, CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(autouse=True)
def _database(db_context: None) -> None:
    """Every test here runs in an app context on the migrated database, emptied afterwards."""


@pytest.fixture(scope="session")
def live_server(app: Flask) -> Iterator[str]:
    """Base URL of a real HTTP server (CSRF on) on the database of the ``app`` fixture.

    Depends on ``app`` so the database is migrated and the permissions synced first.
    """
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            """No access log line per request (errors are still logged)."""

    server_app = create_app(config_for_tests(WTF_CSRF_ENABLED=True))
    # Port 0: the OS picks a free port; the server reports which.
    server = make_server("127.0.0.1", 0, server_app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with server_app.app_context():
            db.session.remove()
            db.engine.dispose()


def _require_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    message = f"Chromium not found at {CHROMIUM}"
    if os.environ.get("REQUIRE_BROWSER"):
        pytest.fail(f"{message} and REQUIRE_BROWSER is set")
    pytest.skip(message)


@pytest.fixture(scope="session")
def _browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=BROWSER_TIMEOUT_MS)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember whether the test body failed, for browser_page's screenshot."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed


@pytest.fixture
def browser_page(_browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page in its own browser context (no cookies shared between tests), whose
    browser asks for English (the suite reads English; the app's default is pt-BR).

    When the test fails, the page is saved to <tmpdir>/e2e_failure_<test>.png."""
    yield from _page(_browser, request, "en-US")


@pytest.fixture
def browser_page_pt_br(_browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """As ``browser_page``, in a Brazilian browser (Accept-Language: pt-BR)."""
    yield from _page(_browser, request, "pt-BR")


def _page(browser: Any, request: pytest.FixtureRequest, locale: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        if request.node.stash.get(_CALL_FAILED, False):
            shot = os.path.join(tempfile.gettempdir(), f"e2e_failure_{request.node.name}.png")
            with contextlib.suppress(Exception):  # a crashed page must not hide the failure
                page.screenshot(path=shot, full_page=True)
        context.close()
