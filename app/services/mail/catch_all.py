"""The demo's catch-all mail server: `flask demo serve` without MAIL_SERVER starts an SMTP server
(aiosmtpd) on a free local port in its own process, names it as MAIL_SERVER, and keeps what
arrives as .eml files (the newest ``KEEP``), which admins read at *Demo mail*. Nothing leaves the
machine: every mail of the demo, whoever it is to, lands here.

Not for production: a real deployment names its mail server, and this never starts then.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
import secrets
import socket
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask

log = logging.getLogger(__name__)

KEEP = 200
#: The config key naming the folder of the running catch-all (unset: none runs).
DIR_KEY = "MAIL_CATCH_ALL_DIR"
NAME = re.compile(r"\A\d{19}-[0-9a-f]{8}\.eml\Z")


class CatchAll:
    """An SMTP server that accepts every mail and writes it to ``directory``."""

    def __init__(self, directory: Path, keep: int = KEEP) -> None:
        self.directory = directory
        self.keep = keep
        self.controller: Controller | None = None
        self.port = 0
        self._app: Flask | None = None
        self._replaced: dict[str, Any] = {}  # the app's settings before it was named

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        self.store(envelope.content)
        return "250 Message accepted for delivery"

    def store(self, content: bytes) -> Path:
        """Written under a temporary name, then renamed: a reader never sees half a mail."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():019d}-{secrets.token_hex(4)}.eml"
        partial = self.directory / f".{name}.part"
        partial.write_bytes(content)
        path = self.directory / name
        partial.rename(path)
        for old in names(self.directory)[self.keep :]:
            (self.directory / old).unlink(missing_ok=True)
        return path

    def start(self, host: str = "127.0.0.1") -> int:
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's line-by-line log
        self.port = _free_port(host)
        self.controller = Controller(self, hostname=host, port=self.port)
        self.controller.start()
        return self.port

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
        if self._app is not None:  # the app no longer sends to a server that is gone
            self._app.config.update(self._replaced)
            self._app = None


def start_for_demo(app: Flask, directory: Path) -> CatchAll | None:
    """Without MAIL_SERVER, a catch-all started and named as the app's mail server (plain SMTP,
    no sign-in); with one named, nothing (the demo then sends to it)."""
    if app.config.get("MAIL_SERVER"):
        return None
    catch_all = CatchAll(directory)
    port = catch_all.start()
    settings = {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": port,
        "MAIL_USE_TLS": False,
        "MAIL_USE_SSL": False,
        "MAIL_USERNAME": None,
        "MAIL_PASSWORD": None,
        DIR_KEY: str(directory),
    }
    catch_all._app, catch_all._replaced = app, {key: app.config.get(key) for key in settings}
    app.config.update(settings)
    log.info("demo mail: catch-all SMTP server on 127.0.0.1:%s, mails kept in %s", port, directory)
    return catch_all


@dataclass(frozen=True)
class Caught:
    name: str
    date: Any  # datetime, or None when the header is missing or unreadable
    to: str
    subject: str


def names(directory: Path) -> list[str]:
    """The kept mails' file names, newest first."""
    if not directory.is_dir():
        return []
    return sorted((p.name for p in directory.iterdir() if NAME.match(p.name)), reverse=True)


def listing(directory: Path) -> list[Caught]:
    parser = BytesHeaderParser(policy=email.policy.default)
    found = []
    for name in names(directory):
        try:
            with (directory / name).open("rb") as file:
                headers = parser.parse(file)
        except OSError:  # pruned meanwhile
            continue
        try:
            date = parsedate_to_datetime(str(headers["Date"])) if headers["Date"] else None
        except (TypeError, ValueError):
            date = None
        found.append(Caught(name, date, str(headers["To"] or ""), str(headers["Subject"] or "")))
    return found


def read(directory: Path, name: str) -> EmailMessage | None:
    """One kept mail, parsed; None for a name that is not one (or no longer there)."""
    if not NAME.match(name):
        return None
    try:
        content = (directory / name).read_bytes()
    except OSError:
        return None
    return email.message_from_bytes(content, policy=email.policy.default)  # type: ignore[return-value]


def leaf_parts(message: EmailMessage) -> list[EmailMessage]:
    """The parts that hold content (not the multipart containers), numbered by position."""
    return [part for part in message.walk() if not part.is_multipart()]  # type: ignore[misc]


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
