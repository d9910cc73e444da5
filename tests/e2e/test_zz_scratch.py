import datetime as dt
import pytest
from tests.support import make_partner, make_user, PASSWORD
from app.extensions import db

def dump(page, name):
    open(f"/tmp/explore/{name}.html", "w").write(page.content())
    page.screenshot(path=f"/tmp/explore/{name}.png", full_page=True)

def vals(page, tag):
    print(tag, page.eval_on_selector_all("#model_form input.form-control[data-format]", "els => els.map(e => e.id + '=' + JSON.stringify(e.value))"))

@pytest.mark.browser
def test_explore(live_server, browser_page):
    p = make_partner("Acme")
    make_user("alice", "Partner", p)
    db.session.commit()
    page = browser_page
    page.goto(live_server + "/login/")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda u: "/login" not in u)
    print("login landed", page.url)
    page.goto(live_server + "/eventview/add")
    form = page.locator("#model_form")
    form.locator("#name").fill("Rock Night")
    form.locator("#venue").fill("Hall")
    form.locator("#city").fill("Sao Paulo")
    form.locator("#starts_at").fill("2026-12-29 12:15:00"); vals(page, "fill starts")
    form.locator("#address").click(); vals(page, "click address")
    form.locator("#starts_at").fill("2026-12-29 12:15:00"); vals(page, "fill starts again")
    page.locator("body").click(position={"x": 5, "y": 300}); vals(page, "click body")
    form.locator("#ends_at").fill("2026-12-29 15:15:00"); vals(page, "fill ends")
    form.get_by_role("button", name="Save").click()
    page.wait_for_load_state()
    print("after save", page.url)
    dump(page, "after_event_save")
