"""A partner user builds an event in the dashboard with a real browser (Chromium, CSRF on):
event, seated section, a 5 x 10 block of seats, and the spots list showing them."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import func, select

from app.extensions import db
from app.models import Event, EventSection, EventSpot
from tests.support.browser import open_navbar_menu
from tests.support.builders import PASSWORD, make_partner, make_user

SCREENSHOT = "/tmp/e2e_spots.png"  # noqa: S108 - a fixed place to look at the spots list
DATETIME = "%Y-%m-%dT%H:%M"


def _partner_alice() -> int:
    """An approved partner with its Partner-role user alice; returns the partner id.

    Commits, so that the test's session holds no transaction while the browser drives the
    live server (the server's threads would wait for its locks)."""
    partner = make_partner("Acme Shows")
    make_user("alice", "Partner", partner)
    partner_id = partner.id
    db.session.commit()
    return partner_id


def _event_times(hours: int = 3) -> tuple[str, str]:
    starts = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=30)
    return starts.strftime(DATETIME), (starts + dt.timedelta(hours=hours)).strftime(DATETIME)


def log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login/")
    page.locator("#username").fill(username)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page).not_to_have_url(re.compile(r"/login/"))
    # tests.support.make_user names the user "<Username> Test".
    expect(page.locator(".navbar")).to_contain_text(f"{username.capitalize()} Test")


def open_menu(page: Page, item: str) -> None:
    """Catalog > item in the navigation bar, as a user would."""
    open_navbar_menu(page, "Catalog", item)


def add_record(page: Page) -> None:
    """The list's "+" button (its name is "Add" plus the icon's glyph)."""
    page.locator(".well").get_by_role("link", name="Add").click()


def set_datetime(page: Page, field: str, value: str) -> None:
    """Type a date and time into the browser's own picker (an <input type="datetime-local">)."""
    page.locator(f"#model_form #{field}").fill(value)


def choose(page: Page, field: str, option: str) -> None:
    """Pick an option in a select2 widget: open it, click the option in its dropdown."""
    rendered = page.locator(f"#select2-{field}-container")
    rendered.click()
    page.locator(".select2-container--open .select2-results__option", has_text=option).click()
    expect(rendered).to_contain_text(option)


def field_row(page: Page, field: str) -> Locator:
    """The form row (label, input, help and errors) of one field."""
    return page.locator("#model_form tr", has=page.locator(f"#{field}"))


def fill_event_form(page: Page, name: str, starts_at: str, ends_at: str) -> None:
    form = page.locator("#model_form")
    form.locator("#name").fill(name)
    form.locator("#description").fill("An evening of loud guitars.")
    form.locator("#venue").fill("Casa de Shows")
    form.locator("#city").fill("Sao Paulo")
    set_datetime(page, "starts_at", starts_at)
    set_datetime(page, "ends_at", ends_at)
    form.get_by_role("button", name="Save").click()


@pytest.mark.browser
def test_partner_creates_event_section_and_seats(live_server: str, browser_page: Page) -> None:
    partner_id = _partner_alice()
    page = browser_page
    log_in(page, live_server, "alice")

    # The event, through the add form (no partner field for a partner user).
    open_menu(page, "Events")
    expect(page).to_have_url(re.compile(r"/eventview/list/"))
    add_record(page)
    expect(page.locator("#model_form #partner")).to_have_count(0)
    starts_at, ends_at = _event_times()
    fill_event_form(page, "Rock Night", starts_at, ends_at)
    expect(page.locator(".alert-success")).to_contain_text("Added Row")
    expect(page).to_have_url(re.compile(r"/eventview/show/\d+$"))  # what was saved
    expect(page.get_by_role("cell", name="Rock Night", exact=True)).to_be_visible()

    # A seated section at R$ 1.150,00, typed as Brazilians write it.
    open_menu(page, "Sections")
    add_record(page)
    choose(page, "event", "Rock Night")
    page.locator("#model_form #name").fill("Plateia")
    choose(page, "kind", "Seated (numbered seats)")
    page.locator("#model_form #price_amount").fill("1.150,00")
    page.locator("#model_form").get_by_role("button", name="Save").click()
    expect(page.locator(".alert-success")).to_contain_text("Added Row")
    expect(page.locator("body")).to_contain_text(re.compile(r"R\$\s?1[.,]150[.,]00"))

    # Saving shows the section; its "Generate spots" action: rows A..E, 10 seats each.
    expect(page).to_have_url(re.compile(r"/eventsectionview/show/\d+$"))
    section_id = int(page.url.rsplit("/", 1)[1])
    page.get_by_role("link", name="Generate spots").click()
    expect(page).to_have_url(re.compile(rf"/eventsectionview/generate/{section_id}$"))
    form = page.locator("#model_form")
    form.locator("#first_row").fill("A")
    form.locator("#last_row").fill("E")
    form.locator("#seats_per_row").fill("10")
    form.get_by_role("button", name="Save").click()

    # The spots list, filtered on the section: 50 seats on one page.
    expect(page).to_have_url(re.compile(rf"/eventspotview/list/\?_flt_0_section={section_id}$"))
    expect(page.locator(".alert-success")).to_contain_text("50 spots generated in Plateia.")
    expect(page.locator(".well .pull-right", has_text="Record Count")).to_have_text(
        re.compile(r"Record Count:\s*50\b")
    )
    expect(page.get_by_role("cell", name="A-1", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="E-10", exact=True)).to_be_visible()
    page.screenshot(path=SCREENSHOT, full_page=True)

    # What the browser did is in the database.
    db.session.remove()
    section = db.session.get(EventSection, section_id)
    assert section is not None
    assert (section.name, section.kind, section.price_cents) == ("Plateia", "seated", 115000)
    assert section.event.name == "Rock Night"
    assert section.event.partner_id == partner_id
    # Typed as the venue's wall clock (São Paulo by default), stored in UTC.
    assert section.event.timezone == "America/Sao_Paulo"
    assert section.event.local_naive("starts_at").strftime(DATETIME) == starts_at
    labels = db.session.scalars(
        select(EventSpot.label).where(EventSpot.section_id == section_id)
    ).all()
    assert len(labels) == 50
    assert {"A-1", "A-10", "E-1", "E-10"} <= set(labels)


@pytest.mark.browser
def test_event_form_error_shows_at_its_field_and_keeps_input(
    live_server: str, browser_page: Page
) -> None:
    _partner_alice()
    page = browser_page
    log_in(page, live_server, "alice")

    page.goto(f"{live_server}/eventview/add")
    ends_at, starts_at = _event_times()  # swapped: the event would end before it starts
    fill_event_form(page, "Backwards Gig", starts_at, ends_at)

    expect(page).to_have_url(re.compile(r"/eventview/add$"))
    expect(field_row(page, "ends_at").locator(".alert-danger")).to_have_text(
        "The event must end after it starts."
    )
    expect(field_row(page, "name").locator(".alert-danger")).to_have_count(0)
    form = page.locator("#model_form")
    expect(form.locator("#name")).to_have_value("Backwards Gig")
    expect(form.locator("#venue")).to_have_value("Casa de Shows")
    expect(form.locator("#starts_at")).to_have_value(starts_at)
    expect(form.locator("#ends_at")).to_have_value(ends_at)

    db.session.remove()
    assert db.session.scalar(select(func.count()).select_from(Event)) == 0
