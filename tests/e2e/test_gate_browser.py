"""The gate page in real Chromium: online, the check-in API judges each scan (one entry per
ticket across gates); offline, the page reads codes exactly as app/models/codes.py signs them,
verifies them with WebCrypto, judges them against the manifest, and the server gets every scan
once the network is back."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.extensions import db
from app.models import CheckIn, Partner
from app.models.base import utcnow
from app.models.codes import TicketClaim, new_private_key, public_key_of, sign_ticket
from app.services import checkin
from tests.support.browser import BROWSER_TIMEOUT_MS, CHROMIUM, CHROMIUM_ARGS
from tests.support.builders import PASSWORD, PartnerActor, make_event, make_partner, make_user
from tests.support.database import forget_checkin_state
from tests.support.gate import forged
from tests.support.shop import buy

# Judges each [code, direction, now] in turn as the page does, admitted scans updating the entries.
JUDGE_SCANS = """
async ({manifest, keys, scans}) => {
  const core = await import("/static/gate-core.js");
  const entries = new core.Entries(manifest.entries);
  const known = new Map(keys);
  const answers = [];
  for (const [code, direction, now] of scans) {
    const at = new Date(now);
    const result = await core.judge(code, {manifest, entries, direction, now: at, keys: known});
    if (result.verdict === "valid") entries.apply(result.claim.ticketId, direction, now, "Here");
    answers.push({verdict: result.verdict, label: result.claim?.label ?? null,
                  ticket: result.claim?.ticketId ?? null, gate: result.entry?.gate ?? null});
  }
  return answers;
}
"""


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _manifest(key: str, event_id: int, **fields: Any) -> dict[str, Any]:
    now = utcnow()
    return {
        "event_id": event_id,
        "name": "Samba de Roda",
        "public_key": public_key_of(key),
        "opens_at": _iso(now - dt.timedelta(hours=1)),
        "closes_at": _iso(now + dt.timedelta(hours=5)),
        "allow_reentry": False,
        "revoked": [],
        "entries": [],
        "generated_at": _iso(now),
        **fields,
    }


def _judge(
    page: Page, manifest: dict[str, Any], scans: list[tuple[str, str, str]], keys: Any = ()
) -> list[dict[str, Any]]:
    return page.evaluate(
        JUDGE_SCANS, {"manifest": manifest, "keys": list(keys), "scans": [list(s) for s in scans]}
    )


@pytest.fixture(autouse=True)
def _no_stale_gate_state(app: Flask, db_context: None) -> None:
    """With Redis, armed events live there too, keyed by ids that restart with the database:
    drop what an earlier run left (``db_context`` drops them again after each test)."""
    forget_checkin_state(app)


@pytest.fixture
def gate_page(live_server: str, browser_page: Page) -> Page:
    browser_page.goto(live_server + "/gate/")
    browser_page.wait_for_selector("body[data-ready=true]", state="attached")
    return browser_page


@pytest.mark.browser
def test_the_page_reads_codes_as_the_server_signs_them_and_gives_each_verdict(gate_page: Page):
    key, other_key, unknown_key = new_private_key(), new_private_key(), new_private_key()
    now = utcnow()
    manifest = _manifest(
        key,
        7,
        revoked=[3],
        entries=[{"ticket_id": 2, "at": _iso(now), "gate": "North", "state": "in"}],
    )
    valid = sign_ticket(key, TicketClaim(7, 1, "Camarote Ñ-5"))
    huge_id = sign_ticket(key, TicketClaim(7, 2**63 + 5, "B-2"))
    other_event = sign_ticket(other_key, TicketClaim(8, 1, "A-1"))
    scans = [
        (valid, "in", _iso(now)),
        (valid, "in", _iso(now)),
        (forged(sign_ticket(key, TicketClaim(7, 10, "A-10"))), "in", _iso(now)),
        ("not a code", "in", _iso(now)),
        (valid[:-3], "in", _iso(now)),
        (other_event, "in", _iso(now)),
        (forged(other_event), "in", _iso(now)),  # its event's key is known: a forgery reads so
        (sign_ticket(unknown_key, TicketClaim(9, 1, "C-1")), "in", _iso(now)),
        (sign_ticket(key, TicketClaim(7, 4, "A-4")), "in", _iso(now + dt.timedelta(days=1))),
        (sign_ticket(key, TicketClaim(7, 5, "A-5")), "in", _iso(now - dt.timedelta(hours=2))),
        (sign_ticket(key, TicketClaim(7, 3, "A-3")), "in", _iso(now)),
        (sign_ticket(key, TicketClaim(7, 2, "A-2")), "in", _iso(now)),
        (huge_id, "in", _iso(now)),
    ]
    answers = _judge(gate_page, manifest, scans, keys=[(8, public_key_of(other_key))])
    assert [a["verdict"] for a in answers] == [
        "valid",
        "already_used",
        "invalid",
        "invalid",
        "invalid",
        "wrong_event",
        "invalid",
        "wrong_event",
        "not_valid_now",
        "not_valid_now",
        "revoked",
        "already_used",
        "valid",
    ]
    assert answers[0] == {"verdict": "valid", "label": "Camarote Ñ-5", "ticket": "1", "gate": None}
    assert answers[1]["gate"] == "Here" and answers[11]["gate"] == "North"
    assert answers[12]["ticket"] == str(2**63 + 5)
    cancelled = _judge(gate_page, _manifest(key, 7, cancelled=True), [(valid, "in", _iso(now))])
    assert cancelled[0]["verdict"] == "not_valid_now"


@pytest.mark.browser
def test_with_reentry_an_exit_allows_one_more_entry(gate_page: Page):
    key = new_private_key()
    code = sign_ticket(key, TicketClaim(7, 1, "A-1"))
    now = _iso(utcnow())
    walk = [(code, "out", now), (code, "in", now), (code, "in", now), (code, "out", now)]
    walk += [(code, "out", now), (code, "in", now), (code, "in", now)]
    with_reentry = _judge(gate_page, _manifest(key, 7, allow_reentry=True), walk)
    assert [a["verdict"] for a in with_reentry] == [
        "invalid",  # not inside: nothing to exit (the server's reason: not_checked_in)
        "valid",
        "already_used",
        "valid",
        "invalid",
        "valid",
        "already_used",
    ]
    without = _judge(gate_page, _manifest(key, 7), walk)
    assert [a["verdict"] for a in without] == [
        "invalid",
        "valid",
        "already_used",
        "valid",
        "invalid",
        "already_used",  # out, but no re-entry
        "already_used",
    ]


@pytest.mark.browser
def test_chromium_verifies_signatures_fast(gate_page: Page):
    per_second = gate_page.evaluate("window.gateBench(2000)")
    print(f"\ngate page: {per_second:,.0f} Ed25519 verifications/s in Chromium")
    assert per_second > 0


# ------------------------------------------------------------------------------- the real server


@dataclass
class Door:
    """An event whose check-in is open, with one ticket sold and a gate device registered."""

    event_id: int
    partner: Partner
    ticket_id: int
    seat: str
    code: str
    device_id: int
    token: str


@pytest.fixture
def door(client: FlaskClient) -> Door:
    partner = make_partner("Aurora")
    event = make_event(partner, "Samba de Roda", rows=("A", "B"), seats=5)
    event.publish()
    event.checkin_opens_at = utcnow() - dt.timedelta(hours=1)
    event.checkin_closes_at = utcnow() + dt.timedelta(hours=6)
    db.session.commit()
    [ticket] = buy(client, event, 1)["tickets"]
    device, token = checkin.register_device(
        db.session, PartnerActor(partner), "North gate phone", [event.id]
    )
    return Door(
        event_id=event.id,
        partner=partner,
        ticket_id=ticket["id"],
        seat=f"{ticket['section']} {ticket['spot']}",
        code=ticket["code"],
        device_id=device.id,
        token=token,
    )


def _open_gate(page: Page, base: str) -> None:
    page.goto(base + "/gate/")
    # The service worker has cached the page: it would reopen offline too.
    expect(page.locator("#offline-ready")).to_be_visible()


def _sign_in_as_device(page: Page, token: str) -> None:
    page.get_by_label("Device token").fill(token)
    page.get_by_role("button", name="Use device token").click()


def _pick_event(page: Page, gate: str) -> None:
    page.get_by_role("button", name=re.compile("Samba de Roda")).click()
    expect(page.locator("#event-name")).to_have_text("Samba de Roda")
    page.get_by_label("Gate", exact=True).fill(gate)


def _scan(page: Page, code: str) -> None:
    field = page.get_by_label("Scan or type a ticket code")
    field.focus()  # after the gate name; from here on the page keeps it focused
    field.press_sequentially(code)  # as a keyboard-wedge scanner types
    field.press("Enter")


def _expect_verdict(page: Page, verdict: str, title: str, seat: str, reason: str) -> None:
    overlay = page.locator("#verdict")
    expect(overlay).to_be_visible()
    expect(overlay).to_have_attribute("data-verdict", verdict)
    expect(overlay).to_have_class(re.compile("ok" if verdict == "valid" else "bad"))
    expect(page.locator("#verdict-title")).to_have_text(title)
    expect(page.locator("#verdict-seat")).to_have_text(seat)
    expect(page.locator("#verdict-reason")).to_contain_text(reason)
    expect(overlay).to_be_hidden()  # after about 1.5 s
    expect(page.get_by_label("Scan or type a ticket code")).to_be_focused()


def _logged(nonces: list[str]) -> list[CheckIn]:
    db.session.rollback()
    checkin.flush_scan_log(db.session)  # with Redis, scans queue there first (a beat task's job)
    # The log keeps nonces per scanner: "d<device id>:<nonce>" or "u<user id>:<nonce>".
    rows = db.session.scalars(select(CheckIn)).all()
    return sorted(
        (row for row in rows if row.nonce.split(":", 1)[1] in nonces),
        key=lambda row: row.scanned_at,
    )


def _uploaded(nonces: list[str], timeout: float = 15) -> list[CheckIn]:
    deadline = time.monotonic() + timeout
    while len(rows := _logged(nonces)) < len(nonces) and time.monotonic() < deadline:
        time.sleep(0.2)
    return rows


def _nonces(page: Page) -> list[str]:
    return page.locator("#scan-log li").evaluate_all("items => items.map(i => i.dataset.nonce)")


@pytest.mark.browser
def test_with_the_network_cut_the_gate_validates_and_uploads_every_scan_when_back(
    live_server: str, browser_page: Page, door: Door
):
    page = browser_page
    _open_gate(page, live_server)
    _sign_in_as_device(page, door.token)
    _pick_event(page, "North 1")
    expect(page.locator("#manifest-stats")).to_contain_text("0 revoked · 0 entries")

    page.context.set_offline(True)
    expect(page.locator("#net")).to_have_text("offline")
    _scan(page, door.code)
    _expect_verdict(page, "valid", "Valid", door.seat, "Welcome")
    _scan(page, door.code)
    _expect_verdict(page, "already_used", "Already used", door.seat, "at North 1")
    _scan(page, forged(door.code))
    _expect_verdict(page, "invalid", "Invalid", "", "Not a genuine ticket")
    expect(page.locator("#count-scanned")).to_have_text("3")
    expect(page.locator("#count-pending")).to_have_text("3")

    # Reopened with no network: the page from the service worker, the scans from IndexedDB.
    page.reload()
    expect(page.locator("#event-name")).to_have_text("Samba de Roda")
    expect(page.locator("#count-pending")).to_have_text("3")
    _scan(page, door.code)
    _expect_verdict(page, "already_used", "Already used", door.seat, "at North 1")
    nonces = _nonces(page)
    assert len(nonces) == 4
    assert _logged(nonces) == []  # nothing reached the server while offline

    page.context.set_offline(False)
    rows = _uploaded(nonces)
    assert [row.result for row in rows] == ["valid", "already_used", "invalid", "already_used"]
    assert [row.device_verdict for row in rows] == [row.result for row in rows]
    assert rows[0].ticket_id == door.ticket_id and rows[0].gate == "North 1"
    assert all(row.offline and row.device_id == door.device_id for row in rows)
    assert not any(row.conflict for row in rows)
    assert {row.event_id for row in rows} == {door.event_id}
    expect(page.locator("#count-pending")).to_have_text("0")
    expect(page.locator("#scan-log li .sync").first).to_have_text("uploaded")


@pytest.mark.browser
def test_a_ticket_another_gate_admitted_meanwhile_is_reported_as_a_conflict(
    live_server: str, browser_page: Page, door: Door, client: FlaskClient
):
    page = browser_page
    _open_gate(page, live_server)
    _sign_in_as_device(page, door.token)
    _pick_event(page, "South 2")
    page.context.set_offline(True)
    expect(page.locator("#net")).to_have_text("offline")
    _, east = checkin.register_device(
        db.session, PartnerActor(door.partner), "East gate", [door.event_id]
    )
    first = client.post(
        "/api/v1/checkin/scan",
        json={"code": door.code, "gate": "East", "nonce": "east-scan-0001"},
        headers={"Authorization": f"Bearer {east}"},
    )
    assert first.get_json()["result"] == "valid"
    _scan(page, door.code)  # this gate cannot know: its manifest says nobody came in
    _expect_verdict(page, "valid", "Valid", door.seat, "Welcome")
    [nonce] = _nonces(page)

    page.context.set_offline(False)
    [row] = _uploaded([nonce])
    assert (row.result, row.device_verdict, row.conflict) == ("already_used", "valid", True)
    expect(page.locator("#scan-log li .sync").first).to_have_text("conflict")


@pytest.mark.browser
def test_gate_staff_log_in_with_their_login_name_and_scans_go_up_at_once_online(
    live_server: str, browser_page: Page, door: Door
):
    gina = make_user("gina", "Gate", door.partner)
    checkin.assign_gate_user(db.session, PartnerActor(door.partner), gina.id, door.event_id)
    page = browser_page
    _open_gate(page, live_server)
    page.get_by_label("Login or email").fill("gina")  # as the README prints gate1
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#signin-error")).to_have_text("Wrong login or password.")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#who")).to_have_text("gina")
    _pick_event(page, "West")
    _scan(page, door.code)
    _expect_verdict(page, "valid", "Valid", door.seat, "Welcome")
    [nonce] = _nonces(page)
    [row] = _uploaded([nonce])
    assert (row.result, row.user_id, row.gate, row.offline) == ("valid", gina.id, "West", False)


@pytest.fixture
def second_page(_browser: Any) -> Iterator[Page]:
    """Another gate: a page in a browser context of its own."""
    context = _browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.mark.browser
def test_two_online_gates_admit_a_ticket_once_as_the_server_judges_every_scan(
    live_server: str, browser_page: Page, second_page: Page, door: Door
):
    _, east_token = checkin.register_device(
        db.session, PartnerActor(door.partner), "East gate phone", [door.event_id]
    )
    north, east = browser_page, second_page
    for page, token, gate in ((north, door.token, "North"), (east, east_token, "East")):
        _open_gate(page, live_server)
        _sign_in_as_device(page, token)
        _pick_event(page, gate)  # both manifests: nobody came in yet

    _scan(north, door.code)
    _expect_verdict(north, "valid", "Valid", door.seat, "Welcome")
    _scan(east, door.code)
    _expect_verdict(east, "already_used", "Already used", door.seat, "at North")

    rows = _logged(_nonces(north) + _nonces(east))
    assert [(row.gate, row.result, row.offline) for row in rows] == [
        ("North", "valid", False),
        ("East", "already_used", False),
    ]
    # The server answered them: nothing left to upload, nothing uploaded twice.
    for page in (north, east):
        expect(page.locator("#count-pending")).to_have_text("0")
        expect(page.locator("#scan-log li .sync").first).to_have_text("uploaded")
    assert len(_logged(_nonces(north) + _nonces(east))) == 2


@pytest.mark.browser
@pytest.mark.parametrize("failure", ["no answer", "503"])
def test_when_the_server_does_not_answer_a_scan_the_manifest_judges_it_and_it_is_uploaded(
    live_server: str, browser_page: Page, door: Door, failure: str
):
    page = browser_page
    _open_gate(page, live_server)
    _sign_in_as_device(page, door.token)
    _pick_event(page, "North")
    if failure == "503":
        page.route("**/api/v1/checkin/scan", lambda route: route.fulfill(status=503, json={}))
    else:
        page.route("**/api/v1/checkin/scan", lambda route: None)  # never answered
    started = time.monotonic()
    _scan(page, door.code)
    _expect_verdict(page, "valid", "Valid", door.seat, "Welcome")
    assert time.monotonic() - started < 6  # the page waits about 2 s for the server at most
    _scan(page, door.code)  # judged here at once while the server is down
    _expect_verdict(page, "already_used", "Already used", door.seat, "at North")

    nonces = _nonces(page)
    rows = _uploaded(nonces)  # through the offline upload, which still works
    assert [(row.result, row.device_verdict, row.offline) for row in rows] == [
        ("valid", "valid", True),
        ("already_used", "already_used", True),
    ]
    expect(page.locator("#count-pending")).to_have_text("0")


def _qr_video(code: str, path: str, width: int = 640, height: int = 480) -> None:
    """A one-frame Y4M video of the code's QR, for Chromium's fake camera (it loops the file)."""
    import segno

    qr = segno.make(code, error="m")
    scale = min(width, height) * 9 // 10 // qr.symbol_size(scale=1, border=4)[0]
    rows = [bytes(16 if dark else 235 for dark in row) for row in qr.matrix_iter(scale, border=4)]
    top, left = (height - len(rows)) // 2, (width - len(rows[0])) // 2
    luma = bytearray([235]) * (width * height)
    for y, row in enumerate(rows):
        start = (top + y) * width + left
        luma[start : start + len(row)] = row
    chroma = bytes([128]) * (width * height // 4)
    with open(path, "wb") as video:
        video.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        video.write(b"FRAME\n" + bytes(luma) + chroma + chroma)


@pytest.mark.browser
def test_the_camera_reads_a_ticket_with_the_vendored_decoder_offline(
    live_server: str, _browser: Any, door: Door, tmp_path: Any
):
    video = str(tmp_path / "ticket.y4m")
    _qr_video(door.code, video)
    camera_args = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    browser = _browser.browser_type.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS + camera_args, headless=True
    )
    try:
        context = browser.new_context(
            viewport={"width": 412, "height": 915}, locale="en-US"
        )  # a phone
        context.set_default_timeout(BROWSER_TIMEOUT_MS)
        page = context.new_page()
        _open_gate(page, live_server)
        _sign_in_as_device(page, door.token)
        _pick_event(page, "Camera lane")
        context.set_offline(True)
        page.get_by_role("button", name="Start camera").click()
        _expect_verdict(page, "valid", "Valid", door.seat, "Welcome")
        # Without BarcodeDetector (Chromium on Linux) the page read it with the vendored jsQR.
        assert page.evaluate("!('BarcodeDetector' in window) && typeof window.jsQR") == "function"
        # The ticket still in front of the camera is one scan, not a stream of "already used".
        expect(page.locator("#count-scanned")).to_have_text("1")
        page.get_by_role("button", name="Stop camera").click()
        expect(page.locator("#camera-video")).to_be_hidden()
    finally:
        browser.close()


def _scanned_offline(page: Page, door: Door, gate: str) -> str:
    """Sign in, pick the event, cut the network and admit the door's ticket: its nonce."""
    _sign_in_as_device(page, door.token)
    _pick_event(page, gate)
    page.context.set_offline(True)
    expect(page.locator("#net")).to_have_text("offline")
    _scan(page, door.code)
    _expect_verdict(page, "valid", "Valid", door.seat, "Welcome")
    [nonce] = _nonces(page)
    return nonce


@pytest.mark.browser
def test_a_device_whose_clock_is_fast_times_its_offline_scans_by_the_servers_clock(
    live_server: str, browser_page: Page, door: Door
):
    page = browser_page
    page.clock.install(time=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=7))
    _open_gate(page, live_server)
    nonce = _scanned_offline(page, door, "North")
    expect(page.locator("#scan-error")).to_have_text(re.compile("clock is 7 min ahead"))

    page.context.set_offline(False)
    [row] = _uploaded([nonce])
    # More than 5 minutes ahead, the server would have refused it: the entry would be lost.
    assert (row.result, row.offline, row.ticket_id) == ("valid", True, door.ticket_id)
    assert abs(row.scanned_at - utcnow()) < dt.timedelta(seconds=30)
    expect(page.locator("#scan-log li .sync").first).to_have_text("uploaded")


@pytest.mark.browser
def test_a_scan_timed_before_the_clock_was_set_ahead_is_timed_again_and_uploaded(
    live_server: str, browser_page: Page, door: Door
):
    page = browser_page
    page.clock.install(time=dt.datetime.now(dt.UTC))
    _open_gate(page, live_server)
    _sign_in_as_device(page, door.token)
    _pick_event(page, "North")
    page.context.set_offline(True)
    expect(page.locator("#net")).to_have_text("offline")
    # Offline, someone sets the clock 7 minutes ahead: the page cannot know until it is back.
    page.clock.set_system_time(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=7))
    _scan(page, door.code)
    _expect_verdict(page, "valid", "Valid", door.seat, "Welcome")
    [nonce] = _nonces(page)
    uploads: list[int] = []
    page.on(
        "response",
        lambda r: uploads.append(r.status) if r.url.endswith("/checkin/offline-scans") else None,
    )

    page.context.set_offline(False)
    [row] = _uploaded([nonce])
    assert (row.result, row.offline) == ("valid", True)
    assert abs(row.scanned_at - utcnow()) < dt.timedelta(seconds=30)
    expect(page.locator("#scan-log li .sync").first).to_have_text("uploaded")
    assert uploads == [422, 200]  # refused in the future, then timed by the server's Date


@pytest.mark.browser
def test_a_scan_the_server_keeps_refusing_for_its_time_is_shown_as_needing_attention(
    live_server: str, browser_page: Page, door: Door
):
    page = browser_page
    _open_gate(page, live_server)
    nonce = _scanned_offline(page, door, "North")
    refusal = {"message": "Scan 1: scanned_at is in the future.", "field": "scans[0].scanned_at"}
    page.route(
        "**/api/v1/checkin/offline-scans", lambda route: route.fulfill(status=422, json=refusal)
    )
    page.context.set_offline(False)
    entry = page.locator("#scan-log li").first
    expect(entry.locator(".sync")).to_contain_text("needs attention")
    expect(entry.locator(".sync")).to_contain_text("scanned_at is in the future")
    expect(entry).to_have_class(re.compile("attention"))
    expect(page.locator("#sync-status")).to_contain_text("1 refused by the server")
    assert _logged([nonce]) == []


@pytest.mark.browser
def test_the_gate_page_switches_language_though_its_worker_keeps_it_for_offline(
    live_server: str, browser_page: Page
):
    """The service worker caches the page, yet a language picked with the switcher shows at
    once (the page is asked of the network first), and the page's scripts speak it too."""
    page = browser_page
    _open_gate(page, live_server)
    expect(page.get_by_role("button", name="Use device token")).to_be_visible()
    page.get_by_role("link", name="Português (Brasil)").click()
    expect(page.locator("html")).to_have_attribute("lang", "pt-BR")
    expect(page.get_by_role("button", name="Usar token do aparelho")).to_be_visible()
    page.get_by_label("Token do aparelho").fill("not-a-token")
    page.get_by_role("button", name="Usar token do aparelho").click()
    expect(page.locator("#signin-error")).not_to_be_empty()
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("button", name="Use device token")).to_be_visible()
