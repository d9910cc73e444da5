"""Mail in the dashboard, for admins only (no other role has these views' permissions):

- *Platform > E-mail outbox*: every mail the platform wrote, its status, attempts, next attempt
  and last error; "Send again" puts a failed (or sent) mail back in line (services/mail/sender.py).
  Read only otherwise: a mail is changed by the sender, never by hand. A mail's params are not
  shown: its cause (``key``, e.g. ``password_reset:12``) says what it is about, and no page
  should print what a renderer is given.
- *Demo mail* (`make run` only): what the demo's catch-all server received
  (services/mail/catch_all.py), a list and each mail with its text, its HTML in a sandboxed
  frame, and its attachments.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from flask import Response, abort, current_app, redirect
from flask_appbuilder import BaseView, action, expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext

from app.extensions import db
from app.i18n import N_
from app.models import OutboxMail
from app.services.mail import catch_all, sender
from app.views.base import ScopedModelView

# What the framed HTML of a caught mail may do: show itself and its images, run nothing, reach
# nothing else (it is whatever the mail says).
SANDBOX = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class OutboxMailView(ScopedModelView):
    datamodel = SQLAInterface(OutboxMail)
    list_title = lazy_gettext("E-mail outbox")
    # Nothing is added or edited here: those titles are never seen, but FAB makes them.
    show_title = add_title = edit_title = lazy_gettext("E-mail")
    base_permissions = ["can_list", "can_show"]
    list_columns = [
        "kind",
        "to_address",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created_at",
        "sent_at",
    ]
    show_columns = [
        "kind",
        "to_address",
        "locale",
        "status",
        "attempts",
        "next_attempt_at",
        "claimed_until",
        "last_error",
        "subject",
        "message_id",
        "key",
        "created_at",
        "sent_at",
    ]
    # Nothing is added or edited here (no permission exists for it); FAB still builds forms.
    add_columns = edit_columns = ["kind"]
    search_columns = ["status", "kind", "to_address", "created_at", "sent_at"]
    order_columns = ["kind", "to_address", "status", "attempts", "next_attempt_at", "created_at",
                     "sent_at"]  # fmt: skip
    base_order = ("id", "desc")
    page_size = 50
    label_columns = {
        "kind": lazy_gettext("Kind"),
        "to_address": lazy_gettext("Recipient"),
        "locale": lazy_gettext("Language"),
        "status": lazy_gettext("Status"),
        "attempts": lazy_gettext("Attempts"),
        "next_attempt_at": lazy_gettext("Next attempt (UTC)"),
        "claimed_until": lazy_gettext("Being sent until (UTC)"),
        "claim_token": lazy_gettext("Sender's claim"),
        "last_error": lazy_gettext("Last error"),
        "subject": lazy_gettext("Subject"),
        "message_id": lazy_gettext("Message-ID"),
        "key": lazy_gettext("Cause"),
        "created_at": lazy_gettext("Written (UTC)"),
        "sent_at": lazy_gettext("Sent (UTC)"),
    }

    formatters_columns = {
        **{
            column: (lambda value: value.strftime("%Y-%m-%d %H:%M:%S") if value else "")
            for column in ("next_attempt_at", "claimed_until", "created_at", "sent_at")
        },
        "last_error": lambda value: value or "",
    }

    @action(
        "resend",
        N_("Send again"),
        lazy_gettext("Send the selected mails again? Only failed or sent mails are sent."),
        "fa-repeat",
    )
    def resend(self, items: Any) -> Any:
        self.run_each(
            items,
            lambda mail: sender.resend(db.session, mail.id),
            N_("%(count)s mail(s) put back in line to be sent."),
        )
        return redirect(self.get_redirect())


class DemoMailView(BaseView):
    route_base = "/dashboard/demo-mail"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self) -> Any:
        return self.render_template(
            "demo_mail.html", mails=catch_all.listing(_directory()), mail=None
        )

    @expose("/<name>")
    @has_access
    def show(self, name: str) -> Any:
        message = catch_all.read(_directory(), name) or abort(404)
        text = message.get_body(preferencelist=("plain",))
        parts = catch_all.leaf_parts(message)
        attachments = [
            (index, part.get_filename() or f"part-{index}", part.get_content_type(),
             len(part.get_payload(decode=True) or b""))
            for index, part in enumerate(parts)
            if part.get_content_disposition() == "attachment"
        ]  # fmt: skip
        return self.render_template(
            "demo_mail.html",
            mails=None,
            mail=SimpleNamespace(
                date=message["Date"],
                sender=message["From"],
                to=message["To"],
                subject=message["Subject"],
                message_id=message["Message-ID"],
            ),
            name=name,
            text=text.get_content() if text is not None else "",
            has_html=message.get_body(preferencelist=("html",)) is not None,
            attachments=attachments,
        )

    @expose("/<name>/html")
    @has_access
    def html(self, name: str) -> Any:
        """The mail's HTML for the page's sandboxed frame, its ``cid:`` images written in as
        ``data:`` addresses (a sandboxed frame's own requests carry no session cookie)."""
        message = catch_all.read(_directory(), name) or abort(404)
        body = message.get_body(preferencelist=("html",)) or abort(404)
        images = {
            str(part["Content-ID"]).strip("<>"): part
            for part in catch_all.leaf_parts(message)
            if part["Content-ID"]
        }

        def inline(match: re.Match[str]) -> str:
            part = images.get(match[1])
            if part is None:
                return match[0]
            data = base64.b64encode(part.get_payload(decode=True) or b"").decode()
            return f"data:{part.get_content_type()};base64,{data}"

        html = re.sub(r"cid:([^\"'\s>]+)", inline, body.get_content())
        return Response(html, mimetype="text/html", headers={"Content-Security-Policy": SANDBOX})

    @expose("/<name>/part/<int:index>")
    @has_access
    def part(self, name: str, index: int) -> Any:
        """One part as a download (an attachment) or as itself (an inline image)."""
        message = catch_all.read(_directory(), name) or abort(404)
        parts = catch_all.leaf_parts(message)
        if index >= len(parts):
            abort(404)
        part = parts[index]
        data = part.get_payload(decode=True) or b""
        headers = {"Content-Security-Policy": SANDBOX}
        if part.get_content_disposition() == "attachment":
            filename = re.sub(r"[^\w.-]", "_", part.get_filename() or f"part-{index}")
            headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        return Response(data, mimetype=part.get_content_type(), headers=headers)


def _directory() -> Path:
    """The running catch-all's folder; 404 when the demo runs none (a mail server is named)."""
    directory = current_app.config.get(catch_all.DIR_KEY)
    if not directory:
        abort(404)
    return Path(directory)
