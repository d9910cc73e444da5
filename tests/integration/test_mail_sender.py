"""The outbox sender (services/mail/sender.py) against a real SMTP server and PostgreSQL: each
mail goes out once, with its parts; a sender killed between its claim and the send leaves a
mail sent once later; a server down means retries with a growing pause, then failure; two
senders at once never send a mail twice; a rolled-back change sends nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from flask import current_app
from sqlalchemy import select, update

from app.extensions import db
from app.models import Conflict, MailStatus, OutboxMail
from app.models.base import utcnow
from app.services.mail import outbox, sender
from app.tasks import celery
from tests.support import mail_notes
from tests.support.database import database_url_for_tests
from tests.support.worker import ROOT


def free_port() -> int:
    """A port nothing listens on: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write(count: int = 1, to: str = "ana@example.com", **params: object) -> list[int]:
    """``count`` notes in one committed transaction, written while no server is named, so no
    task sends them: they wait for the sender the test runs."""
    saved = current_app.config["MAIL_SERVER"]
    current_app.config["MAIL_SERVER"] = None
    try:
        ids = [
            outbox.queue(
                db.session,
                mail_notes.KIND,
                to,
                key=f"test:{time.monotonic_ns()}:{n}",
                locale="en",
                params={"n": n, **params},
            )
            for n in range(count)
        ]
        db.session.commit()
    finally:
        current_app.config["MAIL_SERVER"] = saved
    return [mail_id for mail_id in ids if mail_id is not None]


def row(mail_id: int) -> OutboxMail:
    db.session.expire_all()
    mail = db.session.get(OutboxMail, mail_id)
    assert mail is not None
    return mail


def make_due(mail_id: int) -> None:
    """The pause before the next attempt is over (rather than waiting for it)."""
    db.session.execute(
        update(OutboxMail)
        .where(OutboxMail.id == mail_id)
        .values(next_attempt_at=utcnow() - dt.timedelta(seconds=1))
    )
    db.session.commit()


def test_a_mail_goes_out_once_with_its_text_html_inline_image_and_attachment(mailbox):
    [mail_id] = write(parts=True)
    outcome = sender.send_due(db.session)
    assert outcome.sent == [mail_id]
    [message] = mailbox.wait_for(1)
    mail = row(mail_id)
    assert message["Message-ID"] == mail.message_id
    assert message["To"] == "ana@example.com"
    assert message["From"] == current_app.config["MAIL_DEFAULT_SENDER"]
    assert message["Subject"] == "Note 0" and message["Content-Language"] == "en"
    assert message["Date"]
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    text, related = alternative.iter_parts()
    assert text.get_content().rstrip() == "Note number 0."
    assert related.get_content_type() == "multipart/related"
    html, image = related.iter_parts()
    assert "cid:logo-0" in html.get_content()
    assert image.get_content_type() == "image/png" and image["Content-ID"] == "<logo-0>"
    assert image.get_content() == mail_notes.PIXEL
    assert attachment.get_filename() == "note-0.pdf"
    assert attachment.get_content() == mail_notes.PDF
    assert (mail.status, mail.attempts, mail.subject) == (MailStatus.SENT, 1, "Note 0")
    assert mail.sent_at is not None and mail.claim_token is None and mail.claimed_until is None
    # Sent is sent: a second sweep sends nothing.
    assert sender.send_due(db.session).sent == []
    time.sleep(0.2)
    assert len(mailbox.messages) == 1


def test_a_mail_is_sent_by_its_task_right_after_the_commit_that_wrote_it(mailbox, tasks_in_process):
    mail_id = outbox.queue(db.session, mail_notes.KIND, "bia@example.com", key="k1", locale="en")
    assert mailbox.messages == []  # not before the commit
    db.session.commit()
    [message] = mailbox.wait_for(1, to="bia@example.com")
    assert message["Message-ID"] == row(mail_id).message_id
    assert row(mail_id).status == MailStatus.SENT


def test_a_rolled_back_change_writes_no_mail_and_sends_none(mailbox, tasks_in_process):
    outbox.queue(db.session, mail_notes.KIND, "bia@example.com", key="k1", locale="en")
    db.session.rollback()
    assert db.session.scalars(select(OutboxMail)).all() == []
    assert sender.send_due(db.session).sent == []
    time.sleep(0.2)
    assert mailbox.messages == []


def test_without_a_mail_server_mails_wait_unsent_then_go_once_one_is_named(
    app, smtp_server, tasks_in_process
):
    smtp_server.clear()
    saved = {key: app.config[key] for key in ("MAIL_SERVER", "MAIL_PORT")}
    assert saved["MAIL_SERVER"] is None
    mail_id = outbox.queue(db.session, mail_notes.KIND, "bia@example.com", key="k1", locale="en")
    db.session.commit()
    assert sender.send_due(db.session).sent == []
    assert sender.send_one(db.session, mail_id).sent == []
    mail = row(mail_id)
    assert (mail.status, mail.attempts) == (MailStatus.PENDING, 0)
    assert smtp_server.messages == []
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp_server.port)
    try:
        assert sender.send_due(db.session).sent == [mail_id]
    finally:
        app.config.update(saved)
    smtp_server.wait_for(1, to="bia@example.com")


def test_a_server_down_means_retries_with_a_growing_pause_then_the_mail_goes_once_it_is_up(
    app, mailbox
):
    [mail_id] = write()
    app.config["MAIL_PORT"] = free_port()  # nothing listens there
    before = utcnow()
    assert sender.send_due(db.session).retried == [mail_id]
    mail = row(mail_id)
    assert (mail.status, mail.attempts) == (MailStatus.PENDING, 1)
    assert "refused" in mail.last_error.lower()
    assert mail.claim_token is None
    assert dt.timedelta(seconds=29) <= mail.next_attempt_at - before <= dt.timedelta(seconds=32)
    # Not due yet: a sweep now leaves it alone.
    assert sender.send_due(db.session).retried == []
    assert row(mail_id).attempts == 1
    make_due(mail_id)
    before = utcnow()
    assert sender.send_due(db.session).retried == [mail_id]
    mail = row(mail_id)
    assert mail.attempts == 2
    assert dt.timedelta(seconds=59) <= mail.next_attempt_at - before <= dt.timedelta(seconds=62)
    app.config["MAIL_PORT"] = mailbox.port
    make_due(mail_id)
    assert sender.send_due(db.session).sent == [mail_id]
    [message] = mailbox.wait_for(1)
    assert message["Message-ID"] == row(mail_id).message_id
    mail = row(mail_id)
    assert (mail.status, mail.attempts, mail.last_error) == (MailStatus.SENT, 3, None)


def test_backoff_doubles_from_30_seconds_up_to_an_hour():
    assert [sender.backoff(n).total_seconds() for n in range(1, 10)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600, 3600,
    ]  # fmt: skip


def test_after_its_last_attempt_a_mail_fails_and_shows_why(app, mailbox):
    [mail_id] = write()
    app.config["MAIL_PORT"] = free_port()
    for attempt in range(1, OutboxMail.MAX_ATTEMPTS + 1):
        make_due(mail_id)
        outcome = sender.send_due(db.session)
        assert (outcome.retried if attempt < OutboxMail.MAX_ATTEMPTS else outcome.failed) == [
            mail_id
        ]
    mail = row(mail_id)
    assert (mail.status, mail.attempts) == (MailStatus.FAILED, OutboxMail.MAX_ATTEMPTS)
    assert "ConnectionRefusedError" in mail.last_error
    app.config["MAIL_PORT"] = mailbox.port
    make_due(mail_id)
    assert sender.send_due(db.session).sent == []
    assert row(mail_id).status == MailStatus.FAILED


class Picky:
    """An SMTP server that refuses some recipients: for good (5xx) or for now (4xx)."""

    def __init__(self) -> None:
        self.accepted: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user here"
        if address.startswith("full@"):
            return "452 4.2.2 Mailbox full, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.accepted.extend(envelope.rcpt_tos)
        return "250 Message accepted for delivery"


@pytest.fixture
def picky(app) -> Iterator[Picky]:
    handler = Picky()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    saved = {key: app.config[key] for key in ("MAIL_SERVER", "MAIL_PORT")}
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
    try:
        yield handler
    finally:
        app.config.update(saved)
        controller.stop()


def test_a_recipient_refused_for_good_fails_at_once_one_refused_for_now_is_retried(picky):
    [unknown] = write(to="nobody@example.com")
    [full] = write(to="full@example.com")
    [fine] = write(to="ana@example.com")
    outcome = sender.send_due(db.session)
    # The refusals did not spoil the batch's connection for the mail after them.
    assert (outcome.failed, outcome.retried, outcome.sent) == ([unknown], [full], [fine])
    assert picky.accepted == ["ana@example.com"]
    mail = row(unknown)
    assert (mail.status, mail.attempts) == (MailStatus.FAILED, 1)
    assert "550" in mail.last_error and "No such user" in mail.last_error
    mail = row(full)
    assert (mail.status, mail.attempts) == (MailStatus.PENDING, 1)
    assert "452" in mail.last_error


def test_a_mail_about_something_gone_is_dropped_with_the_reason_and_a_broken_renderer_retries(
    mailbox,
):
    """Moot is not failed: the admins' list of failures keeps to what they can act on."""
    [gone] = write(gone=True)
    [broken] = write(broken=True)
    outcome = sender.send_due(db.session)
    assert (outcome.dropped, outcome.failed, outcome.retried) == ([gone], [], [broken])
    mail = row(gone)
    assert mail.status == MailStatus.DROPPED and "order 42 was deleted" in mail.last_error
    with pytest.raises(Conflict):  # sending it again would only drop it again
        sender.resend(db.session, gone)
    mail = row(broken)
    assert mail.status == MailStatus.PENDING
    assert mail.last_error == "RuntimeError: the template is broken"
    assert mailbox.messages == []


def test_with_a_username_the_sender_signs_in_and_the_password_is_not_in_the_error(app, mailbox):
    """The test server offers no sign-in: the mail waits with the reason, password left out."""
    [mail_id] = write()
    app.config.update(MAIL_USERNAME="bilheteria", MAIL_PASSWORD="s3cret-Pa55")
    try:
        assert sender.send_due(db.session).retried == [mail_id]
    finally:
        app.config.update(MAIL_USERNAME=None, MAIL_PASSWORD=None)
    error = row(mail_id).last_error
    assert error and "AUTH" in error and "s3cret-Pa55" not in error


def test_an_outcome_is_written_only_by_the_claim_that_holds_the_mail(mailbox):
    """A sender that stalled past its lease: the mail was claimed again by another, whose
    outcome is the one kept (the first sender's 'sent' does not overwrite it)."""
    [mail_id] = write()
    [stale] = sender.claim(db.session, 10)
    db.session.execute(
        update(OutboxMail)
        .where(OutboxMail.id == mail_id)
        .values(claimed_until=utcnow() - dt.timedelta(seconds=1))
    )
    db.session.commit()
    [fresh] = sender.claim(db.session, 10)
    assert fresh.id == stale.id == mail_id and fresh.token != stale.token
    sender._mark_sent(db.session, stale, "Note 0")
    mail = row(mail_id)
    assert (mail.status, mail.claim_token, mail.attempts) == (MailStatus.SENDING, fresh.token, 2)
    # The stale sender would not even send it: its claim ran out.
    outcome = sender._deliver(db.session, [stale])
    assert outcome.sent == [] and mailbox.messages == []


def run_sender(mailbox, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_tests(),
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(mailbox.port),
        "FAB_UPDATE_PERMS": "false",
        "LOG_JSON": "false",
    }
    return subprocess.run(
        [sys.executable, "-m", "tests.support.mail_sender_runner", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_sender_killed_between_its_claim_and_the_send_leaves_the_mail_sent_once_later(mailbox):
    [mail_id] = write()
    killed = run_sender(mailbox, "--die-after-claim", "--mail-id", str(mail_id))
    assert killed.returncode == -9, killed.stderr[-2000:]
    mail = row(mail_id)
    assert (mail.status, mail.attempts) == (MailStatus.SENDING, 1)
    assert mail.claimed_until > utcnow()
    # While the dead sender's lease runs, no sweep takes the mail.
    assert json.loads(run_sender(mailbox).stdout.strip().splitlines()[-1])["sent"] == []
    assert mailbox.messages == []
    # The lease runs out (rather than waiting five minutes): the next sweep sends it, once.
    db.session.execute(
        update(OutboxMail)
        .where(OutboxMail.id == mail_id)
        .values(claimed_until=utcnow() - dt.timedelta(seconds=1))
    )
    db.session.commit()
    second = run_sender(mailbox)
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads(second.stdout.strip().splitlines()[-1])["sent"] == [mail_id]
    third = run_sender(mailbox)
    assert json.loads(third.stdout.strip().splitlines()[-1])["sent"] == []
    [message] = mailbox.wait_for(1)
    time.sleep(0.3)
    assert [m["Message-ID"] for m in mailbox.messages] == [row(mail_id).message_id]
    mail = row(mail_id)
    assert (mail.status, mail.attempts) == (MailStatus.SENT, 2)


@pytest.mark.concurrency
def test_two_senders_at_once_deliver_each_of_many_mails_exactly_once(app, mailbox):
    ids = write(60)
    start = threading.Barrier(2)
    outcomes: list[sender.Outcome] = []
    errors: list[BaseException] = []

    def sweep() -> None:
        with app.app_context():
            try:
                start.wait()
                outcomes.append(sender.send_due(db.session, batch=4))
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    sent = [mail_id for outcome in outcomes for mail_id in outcome.sent]
    assert sorted(sent) == sorted(ids)
    # Both took part (4 at a time, 60 mails), and none was sent twice.
    assert all(outcome.sent for outcome in outcomes), [o.sent for o in outcomes]
    messages = mailbox.wait_for(len(ids))
    time.sleep(0.3)
    by_id = Counter(m["Message-ID"] for m in mailbox.messages)
    assert len(mailbox.messages) == len(messages) == len(ids)
    assert set(by_id.values()) == {1}
    assert set(by_id) == {row(mail_id).message_id for mail_id in ids}
    statuses = db.session.scalars(select(OutboxMail.status).distinct()).all()
    assert statuses == [MailStatus.SENT]


def test_resend_puts_a_failed_or_sent_mail_back_due_now_and_refuses_others(mailbox):
    [failed] = write()
    [pending] = write()
    db.session.execute(
        update(OutboxMail)
        .where(OutboxMail.id == failed)
        .values(status=MailStatus.FAILED, attempts=OutboxMail.MAX_ATTEMPTS, last_error="550")
    )
    db.session.commit()
    sender.resend(db.session, failed)
    mail = row(failed)
    assert (mail.status, mail.attempts, mail.last_error) == (MailStatus.PENDING, 0, None)
    assert mail.next_attempt_at <= utcnow()
    with pytest.raises(Conflict):
        sender.resend(db.session, pending)


def test_the_tasks_never_raise_the_row_carries_the_retry(app, mailbox, monkeypatch):
    [mail_id] = write()
    app.config["MAIL_PORT"] = free_port()
    assert celery.tasks["mail.send"].apply(args=(mail_id,)).get() == "retry"
    assert row(mail_id).status == MailStatus.PENDING
    make_due(mail_id)
    assert celery.tasks["mail.send_due"].apply().get() == {
        "sent": 0,
        "retried": 1,
        "failed": 0,
        "dropped": 0,
    }

    def broken(*_args, **_kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(sender, "send_one", broken)
    monkeypatch.setattr(sender, "send_due", broken)
    assert celery.tasks["mail.send"].apply(args=(mail_id,)).get() == "error"
    assert celery.tasks["mail.send_due"].apply().get() == {"error": 1}
    app.config["MAIL_PORT"] = mailbox.port
    monkeypatch.undo()
    make_due(mail_id)
    assert celery.tasks["mail.send"].apply(args=(mail_id,)).get() == "sent"
    assert celery.tasks["mail.send"].apply(args=(mail_id,)).get() == "not due"
    mailbox.wait_for(1)


def test_the_demos_own_thread_sends_what_a_commit_wrote_not_the_request(app, mailbox, monkeypatch):
    """Without a broker (the demo) a task runs inside the request that sends it: a checkout
    would wait for its PDF and the SMTP server. With the demo's pump running, the commit wakes
    it instead, and the mail leaves from its thread."""
    from app.services.mail.pump import MailPump

    sent_by: list[str] = []
    real_send_due = sender.send_due

    def send_due(session, *args, **kwargs):
        sent_by.append(threading.current_thread().name)
        return real_send_due(session, *args, **kwargs)

    monkeypatch.setattr(sender, "send_due", send_due)
    monkeypatch.setattr(
        celery.tasks["mail.send"], "delay", lambda *_: pytest.fail("sent inside the request")
    )
    pump = MailPump(app, interval=3600).start()
    try:
        outbox.queue(db.session, mail_notes.KIND, "pump@example.com", key="pumped", locale="en")
        db.session.commit()
        (message,) = mailbox.wait_for(1, to="pump@example.com")
        assert message["Subject"] == "Note 0"
        assert sent_by == ["mail-pump"]
    finally:
        pump.stop()
    assert "mail_pump" not in app.extensions
