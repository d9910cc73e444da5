"""What a mail says: one renderer per kind, registered with ``@renderer("order_paid")``, that
turns an outbox row's params into a Message, in the mail's language (the sender forces it) and
inside a request context whose base URL is PUBLIC_URL, so ``url_for(..., _external=True)``
makes links that work from a mail reader.

Templates live in ``app/templates/mail/``: ``<kind>.html`` and ``<kind>.txt``, both extending
the layouts ``mail/base.html`` and ``mail/base.txt``. A mail carries no card data and never the
platform's fee.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy.orm import Session

from app.models import OutboxMail


@dataclass(frozen=True)
class Attachment:
    filename: str
    mimetype: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True)
class Inline:
    """An image the HTML part shows with ``<img src="cid:{cid}">``."""

    cid: str
    mimetype: str  # "image/png"
    data: bytes


@dataclass
class Message:
    subject: str
    text: str
    html: str
    attachments: list[Attachment] = field(default_factory=list)
    inline: list[Inline] = field(default_factory=list)


class Gone(Exception):
    """What the mail is about no longer exists (a deleted order): nothing to send."""


Renderer = Callable[[Session, dict[str, Any]], Message]
RENDERERS: dict[str, Renderer] = {}


def renderer(kind: str) -> Callable[[Renderer], Renderer]:
    def register(function: Renderer) -> Renderer:
        RENDERERS[kind] = function
        return function

    return register


def render_pair(template: str, subject: str, **context: Any) -> Message:
    """``mail/<template>.txt`` and ``.html`` with ``context`` (and the subject) as one
    Message."""
    context = {"subject": subject, **context}
    return Message(
        subject=subject,
        text=render_template(f"mail/{template}.txt", **context),
        html=render_template(f"mail/{template}.html", **context),
    )


@contextmanager
def mail_context(locale: str) -> Iterator[None]:
    """A request context at PUBLIC_URL (links), speaking ``locale``."""
    app = current_app._get_current_object()
    with app.test_request_context("/", base_url=app.config["PUBLIC_URL"]), force_locale(locale):
        yield


def render(session: Session, mail: OutboxMail) -> Message:
    """The mail as it reads now, in its language."""
    _load_renderers()
    try:
        function = RENDERERS[mail.kind]
    except KeyError as exc:
        raise Gone(f"no renderer for mail kind {mail.kind!r}") from exc
    with mail_context(mail.locale):
        return function(session, dict(mail.params))


def _load_renderers() -> None:
    # The modules register their kinds on import.
    from app.services.mail import (  # noqa: F401
        account_mails,
        customer_mails,
        notice_mails,
        partner_mails,
        waitlist_mails,
    )
