"""A real SMTP server for the tests (aiosmtpd on a free port) and the app pointed at it: what
the sender delivers arrives here and is parsed as a mail reader would (MIME parts,
attachments, links)."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask


class Mailbox:
    """Every message the server accepted, parsed (``email.policy.default``)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._lock = threading.Lock()
        self.port = 0

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if address in str(m["To"])]

    def wait_for(
        self, count: int = 1, timeout: float = 10.0, to: str | None = None
    ) -> list[EmailMessage]:
        """At least ``count`` messages (to ``to``), waiting for a sender in another thread or
        process; fails the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.to(to) if to else list(self.messages)
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"{len(found)} mails arrived, {count} awaited"
                return found
            time.sleep(0.05)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.envelopes.clear()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Mailbox]:
    box = Mailbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.port = port
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def mailbox(app: Flask, smtp_server: Mailbox) -> Iterator[Mailbox]:
    """The app sends to the test SMTP server during this test; the box starts empty."""
    smtp_server.clear()
    saved = {key: app.config.get(key) for key in ("MAIL_SERVER", "MAIL_PORT")}
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp_server.port)
    try:
        yield smtp_server
    finally:
        app.config.update(saved)
