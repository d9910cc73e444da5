"""The demo's mail sender: a thread of its own process, woken after each commit that wrote mail.

Without a broker, tasks run inside the request that sends them. A checkout would then wait for
its tickets' PDF and the SMTP server, and a password-reset request would answer more slowly for
an address that has an account than for one that has not, which tells them apart. `flask demo
serve` starts this thread instead; outbox.py wakes it rather than sending ``mail.send``. It also
sweeps every ``interval`` seconds, as the beat's ``mail.send_due`` does. Production sends with
Celery workers (the tasks in app/tasks/mail.py), not with this.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask, current_app, has_app_context

log = logging.getLogger(__name__)

EXTENSION = "mail_pump"


class MailPump:
    def __init__(self, app: Flask, interval: float = 30.0) -> None:
        self._app = app
        self._interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mail-pump", daemon=True)

    def start(self) -> MailPump:
        self._app.extensions[EXTENSION] = self
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._app.extensions.pop(EXTENSION, None)

    def _run(self) -> None:
        from app.extensions import db
        from app.services.mail import sender

        while not self._stopping.is_set():
            self._wake.wait(timeout=self._interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            with self._app.app_context():
                try:
                    sender.send_due(db.session)
                except Exception:  # the database, say: the next turn tries again
                    db.session.rollback()
                    log.exception("the demo's mail sender failed; it tries again")
                finally:
                    db.session.remove()


def running() -> MailPump | None:
    """The pump of this app, when `flask demo serve` started one."""
    if not has_app_context():
        return None
    pump = current_app.extensions.get(EXTENSION)
    return pump if isinstance(pump, MailPump) else None
