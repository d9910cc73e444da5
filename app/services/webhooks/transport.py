"""How a webhook goes over the wire: signed (Stripe's scheme, ``signature_header``, and the
receiver's check, ``verify_signature``), POSTed to the address checked once (no DNS
rebinding; in production only addresses on the internet) within a deadline on the whole POST,
and the reasons an attempt failed as stored in ``last_error`` (English msgids, translated when
shown: ``error_text``). sender.py claims deliveries and records what this answers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask_babel import gettext

from app.i18n import N_
from app.models.webhook import is_public_address

#: Each network operation's timeout (connect, a read)...
TIMEOUT_SECONDS = 10.0
#: ...and the whole POST's: connect, send, status, headers and the body's excerpt.
DEADLINE_SECONDS = 15.0
#: How much of an answer is kept to show in the dashboard.
RESPONSE_EXCERPT = 500
#: The signature's tolerance a receiver should apply (and ``verify_signature`` does).
TOLERANCE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Answer:
    """What the endpoint answered: its HTTP status and the start of its body."""

    status: int
    body: str


class Permanent(Exception):
    """A failure that another attempt would repeat: the delivery fails at once."""


class DeadlineExceeded(TimeoutError):
    """The endpoint did not finish its answer within DEADLINE_SECONDS."""


#: The reasons a delivery failed, as stored in ``last_error`` (English, these msgids with their
#: values) and shown translated (``error_text``).
STALLED = N_("the sender stopped while sending it (it may have been delivered)")
NOT_WEB = N_("not a web address: %(url)s")
NOT_ASCII = N_("the address has characters other than ASCII: it cannot be sent")
NOT_PUBLIC = N_("%(host)s resolves to an address not on the internet (%(address)s)")
NO_ANSWER = N_("no answer within %(seconds)s s")
TOO_SLOW = N_("no complete answer within %(seconds)s s")
ERRORS = (STALLED, NOT_WEB, NOT_ASCII, NOT_PUBLIC, NO_ANSWER, TOO_SLOW)


def stored_error(msgid: str, **values: Any) -> str:
    """A reason as stored: the English text (the msgid with its values)."""
    return msgid % values if values else msgid


def _pattern(msgid: str) -> re.Pattern[str]:
    parts = re.split(r"%\((\w+)\)s", msgid)  # text, name, text, name, ..., text
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.*)" for i, part in enumerate(parts)
    )
    return re.compile(regex + r"\Z", re.DOTALL)


_PATTERNS = [(msgid, _pattern(msgid)) for msgid in ERRORS]


def error_text(stored: str | None) -> str:
    """A stored ``last_error`` in the reader's language: one of ``ERRORS`` translated with its
    values, any other (an HTTP status, the network's own error) as it is."""
    if not stored:
        return ""
    for msgid, pattern in _PATTERNS:
        found = pattern.match(stored)
        if found:
            return gettext(msgid, **found.groupdict())
    return stored


# --------------------------------------------------------------------------- signing


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``, in hex."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: list[str], timestamp: int, body: bytes) -> str:
    return ",".join([f"t={timestamp}", *(f"v1={sign(s, timestamp, body)}" for s in secrets)])


def verify_signature(
    header: str, body: bytes, secret: str, *, now: float | None = None, tolerance: float = 300
) -> bool:
    """The receiver's check: one ``v1`` of the header is the body's signature under ``secret``
    and its ``t`` is within ``tolerance`` seconds of ``now``."""
    timestamp, signatures = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, signature) for signature in signatures)


def _excerpt(raw: bytes) -> str:
    return raw[: RESPONSE_EXCERPT * 4].decode("utf-8", errors="replace")[:RESPONSE_EXCERPT]


def destination(host: str, port: int, *, production: bool) -> list[tuple[Any, ...]]:
    """The addresses to connect to for ``host``: resolved once, here. In production each must
    be on the internet, else Permanent: a name that also resolves to this machine or a private
    network is refused, whichever address a connection would use."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError:
        raise Permanent(stored_error(NOT_ASCII)) from None
    if production:
        private = sorted({info[4][0] for info in found if not is_public_address(info[4][0])})
        if private:
            raise Permanent(stored_error(NOT_PUBLIC, host=host, address=private[0]))
    return [info[4] for info in found]


def check_destination(url: str) -> None:
    """In production, refuse a host that resolves to an address not on the internet (Permanent);
    ``post`` does this itself with the addresses it connects to."""
    parts = urlsplit(url)
    try:
        destination(parts.hostname or "", parts.port or 443, production=True)
    except OSError:
        return  # the request's own error says it


class _Pinned:
    """A connection to the addresses ``destination`` checked, never to a name resolved again;
    ``abort`` (from another thread, at the deadline) shuts its socket down."""

    host: str
    port: int
    timeout: float
    sock: Any

    def _pin(self, addresses: list[tuple[Any, ...]], deadline: float) -> None:
        self._addresses, self._deadline = addresses, deadline
        self._raw: socket.socket | None = None
        self._aborted = threading.Event()

    def _open(self) -> socket.socket:
        error: OSError = OSError("no address")
        for address in self._addresses:
            left = self._deadline - time.monotonic()
            if left <= 0 or self._aborted.is_set():
                raise DeadlineExceeded
            try:
                sock = socket.create_connection((address[0], self.port), min(self.timeout, left))
            except OSError as exc:
                error = exc
                continue
            self._raw = sock
            if self._aborted.is_set():  # the deadline passed while connecting
                self.abort()
            return sock
        raise error

    def abort(self) -> None:
        self._aborted.set()
        if self._raw is not None:
            # The plain socket's shutdown, below TLS: a blocked read returns at once.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._raw, socket.SHUT_RDWR)


class _PinnedHTTP(_Pinned, http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = self._open()


class _PinnedHTTPS(_Pinned, http.client.HTTPSConnection):
    def connect(self) -> None:
        # SNI and the certificate's check are the host name's, whatever address we reached.
        self.sock = self._context.wrap_socket(self._open(), server_hostname=self.host)


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    *,
    production: bool = False,
    deadline: float | None = None,
) -> Answer:
    """POST ``body`` to ``url``, connecting to the address checked (``destination``); the
    answer, whatever its status, read within ``deadline`` seconds (DEADLINE_SECONDS) in all.
    Network failures raise (DeadlineExceeded at the deadline); an address that can never be
    sent, Permanent. Redirects are answers: never followed."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):  # never file: or another scheme
        raise Permanent(stored_error(NOT_WEB, url=url[:100]))
    if not url.isascii():  # a request line and a Host header are ASCII: every attempt would fail
        raise Permanent(stored_error(NOT_ASCII))
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    seconds = DEADLINE_SECONDS if deadline is None else deadline
    ends = time.monotonic() + seconds
    addresses = destination(host, port, production=production)
    kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    extra = {"context": ssl.create_default_context()} if kind is _PinnedHTTPS else {}
    connection = kind(host, port, timeout=min(timeout, seconds), **extra)
    connection._pin(addresses, ends)
    timer = threading.Timer(seconds, connection.abort)
    timer.daemon = True
    timer.start()
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read(RESPONSE_EXCERPT * 4)  # the excerpt's worth, never the whole body
        if connection._aborted.is_set():
            raise DeadlineExceeded
        return Answer(response.status, _excerpt(raw))
    except (OSError, http.client.HTTPException, ValueError):
        if connection._aborted.is_set():
            raise DeadlineExceeded from None
        raise
    finally:
        timer.cancel()
        connection.close()
