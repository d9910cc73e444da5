"""Mail in the dashboard: admins see the outbox (a failed mail and why) and send a mail again;
the demo's catch-all server keeps what the demo sends and admins read it at *Demo mail*; no
other role reaches either."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import MailStatus, OutboxMail
from app.services.mail import catch_all, outbox, sender
from tests.support import mail_notes
from tests.support.builders import login, make_user
from tests.support.pages import text


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def failed_mail(app: Flask) -> int:
    """A note the server never took, MAX_ATTEMPTS times over: failed, with the reason. Written
    while no server is named (no task sends it at its commit)."""
    saved = {key: app.config[key] for key in ("MAIL_SERVER", "MAIL_PORT")}
    app.config["MAIL_SERVER"] = None
    mail_id = outbox.queue(
        db.session, mail_notes.KIND, "ana@example.com", key="note:1", locale="en",
        params={"n": 7},
    )  # fmt: skip
    db.session.execute(
        OutboxMail.__table__.update()
        .where(OutboxMail.id == mail_id)
        .values(attempts=OutboxMail.MAX_ATTEMPTS - 1)
    )
    db.session.commit()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=closed_port())
    try:
        assert sender.send_due(db.session).failed == [mail_id]
    finally:
        app.config.update(saved)
    return mail_id


def test_an_admin_sees_a_failed_mail_and_why_then_sends_it_again_and_it_arrives(
    app, client, mailbox, tasks_in_process
):
    mail_id = failed_mail(app)
    make_user("root", "Admin")
    login(client, "root")
    listed = client.get("/outboxmailview/list/?_flt_3_status=failed")
    assert listed.status_code == 200
    page = text(listed)
    assert "E-mail outbox" in page and "ana@example.com" in page and "failed" in page
    assert "ConnectionRefusedError" in page
    assert "Last error" in page and "Next attempt (UTC)" in page
    # Filtered by status: a sent mail is not in the failed list.
    assert "ana@example.com" not in text(client.get("/outboxmailview/list/?_flt_3_status=sent"))
    shown = text(client.get(f"/outboxmailview/show/{mail_id}"))
    assert "ConnectionRefusedError" in shown and "outbox-" in shown
    assert mailbox.messages == []

    done = client.post(f"/outboxmailview/action/resend/{mail_id}", follow_redirects=True)
    assert "1 mail(s) put back in line to be sent." in text(done)
    [message] = mailbox.wait_for(1, to="ana@example.com")
    db.session.expire_all()
    mail = db.session.get(OutboxMail, mail_id)
    assert message["Message-ID"] == mail.message_id
    assert (mail.status, mail.attempts, mail.last_error) == (MailStatus.SENT, 1, None)
    # A mail not sent yet (held for its address's confirmation) is not "sent again".
    held = outbox.queue(
        db.session, mail_notes.KIND, "bia@example.com", key="n2", locale="en", held=True
    )
    db.session.commit()
    refused = client.post(f"/outboxmailview/action/resend/{held}", follow_redirects=True)
    assert "Only a failed or sent mail can be sent again." in text(refused)
    assert db.session.get(OutboxMail, held).status == MailStatus.HELD


def test_partner_staff_and_finance_do_not_reach_the_outbox(app, client, mailbox, two_partners):
    mail_id = failed_mail(app)
    for user in ("alice", "gina", "fiona"):  # a partner's staff, its gate staff, finance
        client.get("/logout/")
        login(client, user)
        for path in (
            "/outboxmailview/list/",
            f"/outboxmailview/show/{mail_id}",
            "/dashboard/demo-mail/",
        ):
            assert client.get(path).status_code in (403, 404), (user, path)
        assert client.post(f"/outboxmailview/action/resend/{mail_id}").status_code in (403, 404)
    status = db.session.scalar(select(OutboxMail.status).where(OutboxMail.id == mail_id))
    assert status == MailStatus.FAILED


@pytest.fixture
def demo_catch_all(app, tmp_path) -> Iterator[catch_all.CatchAll]:
    """The demo's start: no mail server named, so the catch-all is started and named."""
    keys = ("MAIL_SERVER", "MAIL_PORT", catch_all.DIR_KEY)
    saved = {key: app.config.get(key) for key in keys}
    assert saved["MAIL_SERVER"] is None
    started = catch_all.start_for_demo(app, tmp_path / "mail")
    assert started is not None
    try:
        yield started
    finally:
        started.stop()
        app.config.update(saved)


def test_the_demo_catch_all_keeps_what_is_sent_and_an_admin_reads_it(
    app, client, demo_catch_all, tmp_path
):
    assert app.config["MAIL_SERVER"] == "127.0.0.1"
    assert app.config["MAIL_PORT"] == demo_catch_all.port
    mail_id = outbox.queue(
        db.session, mail_notes.KIND, "caio@example.com", key="note:9", locale="en",
        params={"n": 9, "parts": True},
    )  # fmt: skip
    db.session.commit()
    assert sender.send_due(db.session).sent == [mail_id]
    [kept] = list((tmp_path / "mail").glob("*.eml"))

    make_user("root", "Admin")
    login(client, "root")
    listed = client.get("/dashboard/demo-mail/")
    assert listed.status_code == 200
    page = text(listed)
    assert "caio@example.com" in page and "Note 9" in page
    shown = client.get(f"/dashboard/demo-mail/{kept.name}")
    page = text(shown)
    assert "Note number 9." in page and "note-9.pdf" in page
    html = client.get(f"/dashboard/demo-mail/{kept.name}/html")
    assert html.headers["Content-Security-Policy"].startswith("sandbox;")
    assert "Note number 9." in html.get_data(as_text=True)
    # The inline image is written in, not left as an unreachable cid: address.
    assert "cid:logo-9" not in html.get_data(as_text=True)
    pixel = base64.b64encode(mail_notes.PIXEL).decode()
    assert f'src="data:image/png;base64,{pixel}"' in html.get_data(as_text=True)
    [link] = [
        line.split('href="')[1].split('"')[0]
        for line in shown.get_data(as_text=True).splitlines()
        if "note-9.pdf</a>" in line
    ]
    download = client.get(link)
    assert download.data == mail_notes.PDF
    assert 'filename="note-9.pdf"' in download.headers["Content-Disposition"]
    assert client.get("/dashboard/demo-mail/../../etc/passwd").status_code == 404
    assert client.get("/dashboard/demo-mail/0000000000000000000-deadbeef.eml").status_code == 404

    client.get("/logout/")
    make_user("fiona", "Finance")
    login(client, "fiona")
    assert client.get("/dashboard/demo-mail/").status_code in (403, 404)
    assert client.get(f"/dashboard/demo-mail/{kept.name}").status_code in (403, 404)


def test_without_a_catch_all_the_demo_mail_page_is_not_found(app, client):
    assert app.config.get(catch_all.DIR_KEY) is None
    make_user("root", "Admin")
    login(client, "root")
    assert client.get("/dashboard/demo-mail/").status_code == 404


def test_the_catch_all_starts_only_without_a_mail_server_and_keeps_the_newest(app, tmp_path):
    app.config["MAIL_SERVER"] = "smtp.example.com"
    try:
        assert catch_all.start_for_demo(app, tmp_path) is None
        assert app.config["MAIL_SERVER"] == "smtp.example.com"
    finally:
        app.config["MAIL_SERVER"] = None
    box = catch_all.CatchAll(tmp_path / "kept", keep=3)
    for n in range(5):
        box.store(f"Subject: mail {n}\r\nTo: a@example.com\r\n\r\nbody\r\n".encode())
    assert [m.subject for m in catch_all.listing(tmp_path / "kept")] == [
        "mail 4", "mail 3", "mail 2",
    ]  # fmt: skip
    assert len(list(Path(tmp_path / "kept").iterdir())) == 3


def test_demo_serve_without_a_mail_server_catches_mail_links_it_and_sets_public_url(
    app, monkeypatch, tmp_path
):
    """`flask demo serve` (the server itself stubbed): while it serves, the catch-all runs and
    is the app's mail server, the menu links *Demo mail*, and links in mails point at the
    address it serves at; once it returns, the catch-all is stopped."""
    import flask_migrate
    import werkzeug.serving

    from app import cli

    keys = ("MAIL_SERVER", "MAIL_PORT", "PUBLIC_URL", catch_all.DIR_KEY)
    saved = {key: app.config.get(key) for key in keys}
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    monkeypatch.setattr(flask_migrate, "upgrade", lambda: None)
    monkeypatch.setattr(cli, "_load_demo", lambda if_empty: None)
    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)
    real_start = catch_all.start_for_demo
    monkeypatch.setattr(
        catch_all, "start_for_demo", lambda app, _directory: real_start(app, tmp_path / "mail")
    )
    seen: dict[str, object] = {}

    def serving(host, port, application, **_options):
        seen.update(application.config)
        platform = application.appbuilder.menu.find("Platform")
        seen["menu"] = [child.name for child in platform.childs]
        with socket.create_connection(("127.0.0.1", application.config["MAIL_PORT"])) as smtp:
            seen["banner"] = smtp.recv(100)

    monkeypatch.setattr(werkzeug.serving, "run_simple", serving)
    try:
        result = app.test_cli_runner().invoke(args=["demo", "serve", "--no-beat", "--port", "5099"])
        assert result.exit_code == 0, result.output
        assert seen["PUBLIC_URL"] == "http://127.0.0.1:5099"
        assert seen["MAIL_SERVER"] == "127.0.0.1"
        assert seen[catch_all.DIR_KEY] == str(tmp_path / "mail")
        assert "Demo mail" in seen["menu"]
        assert seen["banner"].startswith(b"220")
        assert "read at http://127.0.0.1:5099/dashboard/demo-mail/" in result.output
        with pytest.raises(OSError):  # stopped with the server
            socket.create_connection(("127.0.0.1", seen["MAIL_PORT"]), timeout=2).close()
        # ... and the app no longer names it (nor the address it served at)
        assert {key: app.config.get(key) for key in keys} == saved
    finally:
        app.config.update(saved)
        platform = app.appbuilder.menu.find("Platform")
        platform.childs = [child for child in platform.childs if child.name != "Demo mail"]
