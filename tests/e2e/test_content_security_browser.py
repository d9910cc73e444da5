"""Every kind of page runs under the Content-Security-Policy (script-src 'self', FAB's inline
scripts by nonce) without the browser refusing a script: the dashboard (lists with their search
filters, forms, row pages, the API's Swagger page), the shop and the gate page."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from app.extensions import db
from tests.support.builders import PASSWORD, make_event, make_partner, make_user

REFUSED = re.compile("Content Security Policy|Content-Security-Policy", re.IGNORECASE)


def _watch(page: Page) -> list[str]:
    """What the browser refused, from the console and from securitypolicyviolation events."""
    refused: list[str] = []
    page.on("console", lambda msg: refused.append(msg.text) if REFUSED.search(msg.text) else None)
    page.expose_function("noteViolation", lambda text: refused.append(text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "window.noteViolation(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}`));"
    )
    return refused


def _settle(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")


def test_no_page_has_a_script_refused(live_server: str, browser_page: Page) -> None:
    partner = make_partner("Aurora")
    event = make_event(partner, "Samba Night")
    event.publish()
    make_user("root", "Admin")
    event_id = event.id
    db.session.commit()
    page = browser_page
    refused = _watch(page)
    base = live_server

    for path in ("/", f"/events/{event_id}", "/signup", "/gate/"):
        _settle(page, base + path)
    expect(page.locator("body")).to_be_visible()

    page.goto(f"{base}/login/")
    page.locator("#username").fill("root")
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page).not_to_have_url(re.compile(r"/login/"))
    for path in ("/eventview/list/", "/eventview/add", f"/eventview/show/{event_id}",
                 f"/eventview/edit/{event_id}", "/users/list/", "/roles/list/",
                 "/swagger/v1"):  # fmt: skip
        _settle(page, base + path)
    expect(page.locator("#swagger-ui .info")).to_be_visible()  # Swagger UI's bundle ran
    assert refused == [], refused
    # FAB's search filters work through its inline script (nonce): it ran.
    _settle(page, base + "/eventview/list/")
    page.locator('a[href="#accordion1_href"]').click()  # the search panel, folded
    page.get_by_role("button", name="Add Filter").click()
    page.locator("#filter_form a.filter").first.click()
    expect(page.locator("#filter_form table.filters tbody tr")).to_have_count(1)
    assert refused == [], refused
