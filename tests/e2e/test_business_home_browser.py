"""A partner opens the dashboard's home and an event's overview in Chromium: the sales figures
and the sales-per-day chart (inline SVG drawn by the server, no script) render; screenshots of
both are saved under the test's temporary directory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from app.extensions import db
from tests.support.builders import PASSWORD, make_user
from tests.support.shop import buy


def _log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login/")
    page.locator("#username").fill(username)
    page.locator("#password").fill(PASSWORD)
    page.locator("#password").press("Enter")  # the button reads "Entrar" in Portuguese
    expect(page).not_to_have_url(re.compile(r"/login/"))


def _drawn_bars(page: Page) -> list[float]:
    """The height on screen of each bar of the page's sales chart that has a value."""
    bars = page.locator("svg.sales-chart rect.bar:not([data-value='0'])")
    return [bars.nth(i).bounding_box()["height"] for i in range(bars.count())]


@pytest.mark.browser
def test_a_partner_sees_its_sales_and_charts_on_the_home_and_an_overview(
    browser_page_pt_br: Page, live_server: str, client, on_sale, tmp_path: Path
):
    make_user("alice", "Partner", on_sale.partner)
    for quantity in (2, 3):
        buy(client, on_sale, quantity)
    name, event_id = on_sale.name, on_sale.id
    db.session.commit()  # the live server's threads must not wait for this session
    page = browser_page_pt_br  # a Brazilian browser: money reads R$ 500,00

    _log_in(page, live_server, "alice")
    page.goto(f"{live_server}/dashboard/")
    panel = page.locator(f".event-figures[data-event='{event_id}']")
    expect(panel.locator("strong.sold")).to_have_text("5")
    expect(panel.locator("strong.revenue")).to_have_text("R$\u00a0500,00")
    expect(page.locator("#sales-today .tickets")).to_have_text("5")
    expect(panel.locator("svg.sales-chart rect.bar")).to_have_count(30)
    page.screenshot(path=str(tmp_path / "home.png"), full_page=True)
    assert _drawn_bars(page) and all(height > 10 for height in _drawn_bars(page))

    page.goto(f"{live_server}/language/en?next=%2Fdashboard%2F")  # the switcher: English
    panel.get_by_role("link", name=name).click()
    expect(page).to_have_url(re.compile(rf"/eventoverview/{event_id}$"))
    expect(page.locator("#overview-sections tbody .sold")).to_have_text(["5"])
    expect(page.locator("#overview-totals h3.revenue")).to_have_text("R$500.00")
    expect(page.locator("svg.sales-chart rect.bar")).to_have_count(30)
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
    assert len(_drawn_bars(page)) == 1 and _drawn_bars(page)[0] > 100

    for shot in ("home.png", "overview.png"):
        assert (tmp_path / shot).stat().st_size > 10_000
