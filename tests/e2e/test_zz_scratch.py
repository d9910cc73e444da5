import pytest
from tests.support import make_partner, make_user, PASSWORD
from app.extensions import db

@pytest.mark.browser
def test_explore(live_server, browser_page):
    p = make_partner("Acme")
    make_user("alice", "Partner", p)
    db.session.commit()
    page = browser_page
    page.on("console", lambda m: print("CONSOLE", m.type, m.text))
    page.goto(live_server + "/login/")
    open("/tmp/explore/login.html", "w").write(page.content())
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.locator("input[type=submit], button[type=submit]").first.click()
    page.wait_for_load_state()
    print("after login", page.url)
    page.goto(live_server + "/eventview/add")
    open("/tmp/explore/event_add.html", "w").write(page.content())
    page.screenshot(path="/tmp/explore/event_add.png", full_page=True)
    page.goto(live_server + "/eventsectionview/add")
    open("/tmp/explore/section_add.html", "w").write(page.content())
    page.screenshot(path="/tmp/explore/section_add.png", full_page=True)
    page.goto(live_server + "/eventview/list/")
    open("/tmp/explore/event_list.html", "w").write(page.content())
