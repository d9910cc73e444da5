"""Webhooks in the dashboard: a partner's endpoints and the deliveries to them, scoped to the
partner (admins see every partner's).

- *Integrations > Webhooks*: register an https:// endpoint and tick the kinds of event it hears
  of; its page shows the secret deliveries are signed with and the deliveries sent to it.
  Edit it (address, kinds, active: an inactive endpoint gets nothing new and its waiting
  deliveries wait), or rotate its secret (the old one still signs for a day).
- *Integrations > Webhook deliveries*: each delivery with its status, attempts, the endpoint's
  last answer (HTTP status and the start of its body) and the error; "Send again" puts a
  delivered or failed one back in line (services/webhooks/sender.py).
"""

from __future__ import annotations

import json
from typing import Any

from flask import redirect, url_for
from flask_appbuilder import action
from flask_appbuilder.models.sqla.filters import SQLAFilterConverter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext
from markupsafe import Markup
from wtforms import BooleanField

from app.extensions import db
from app.i18n import N_
from app.models import WebhookDelivery, WebhookEndpoint
from app.models.base import utcnow
from app.services.webhooks import endpoints, sender, transport
from app.views.base import ScopedModelView, current_user
from app.views.forms import webhook_kinds_field


class _KindsUnfiltered(SQLAFilterConverter):
    """FAB has no filter for an array column and warns of it on every list it builds: the
    endpoint's kinds are simply not a filter."""

    def convert(self, col_name: str) -> Any:
        return [] if col_name == "kinds" else super().convert(col_name)


class _EndpointInterface(SQLAInterface):
    """Also the deliveries' (FAB makes a related model's interface of the same class)."""

    filter_converter_class = _KindsUnfiltered


def _utc(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _preformatted(value: Any) -> Markup:
    return Markup("<pre>{}</pre>").format(value or "")


class WebhookDeliveryView(ScopedModelView):
    datamodel = _EndpointInterface(WebhookDelivery)
    list_title = lazy_gettext("Webhook deliveries")
    show_title = add_title = edit_title = lazy_gettext("Webhook delivery")
    base_permissions = ["can_list", "can_show"]
    list_columns = [
        "id", "endpoint", "kind", "status", "attempts", "response_status", "next_attempt_at",
        "created_at", "delivered_at",
    ]  # fmt: skip
    show_columns = [
        "id", "endpoint", "kind", "status", "attempts", "created_at", "last_attempt_at",
        "next_attempt_at", "claimed_until", "delivered_at", "response_status", "response_body",
        "last_error", "payload", "key",
    ]  # fmt: skip
    # Nothing is added or edited here (no permission exists for it); FAB still builds forms.
    add_columns = edit_columns = ["kind"]
    search_columns = ["endpoint", "kind", "status", "response_status", "created_at"]
    order_columns = ["id", "kind", "status", "attempts", "next_attempt_at", "created_at"]
    base_order = ("id", "desc")
    page_size = 50
    label_columns = {
        "id": lazy_gettext("Delivery"),
        "endpoint": lazy_gettext("Endpoint"),
        "kind": lazy_gettext("Event"),
        "status": lazy_gettext("Status"),
        "attempts": lazy_gettext("Attempts"),
        "response_status": lazy_gettext("Answer (HTTP)"),
        "response_body": lazy_gettext("Answer's body (start)"),
        "last_error": lazy_gettext("Last error"),
        "payload": lazy_gettext("Data sent"),
        "key": lazy_gettext("Cause"),
        "created_at": lazy_gettext("Written (UTC)"),
        "last_attempt_at": lazy_gettext("Last attempt (UTC)"),
        "next_attempt_at": lazy_gettext("Next attempt (UTC)"),
        "claimed_until": lazy_gettext("Being sent until (UTC)"),
        "delivered_at": lazy_gettext("Delivered (UTC)"),
        # Not shown; FAB labels every column all the same.
        "claim_token": lazy_gettext("Sender's claim"),
        "endpoint_id": lazy_gettext("Endpoint"),
        "partner_id": lazy_gettext("Partner"),
    }
    formatters_columns = {
        **{
            column: _utc
            for column in (
                "created_at",
                "last_attempt_at",
                "next_attempt_at",
                "claimed_until",
                "delivered_at",
            )
        },  # fmt: skip
        "payload": lambda value: _preformatted(json.dumps(value, indent=2, sort_keys=True)),
        "response_body": _preformatted,
        "last_error": transport.error_text,
        "response_status": lambda value: value or "",
    }

    @action(
        "resend",
        N_("Send again"),
        lazy_gettext(
            "Send the selected deliveries again? Only delivered or failed ones are sent, with "
            "the same id."
        ),
        "fa-repeat",
    )
    def resend(self, items: Any) -> Any:
        self.run_each(
            items,
            lambda delivery: sender.resend(db.session, delivery.id, current_user()),
            N_("%(count)s delivery(ies) put back in line to be sent."),
        )
        return redirect(self.get_redirect())


class WebhookEndpointView(ScopedModelView):
    datamodel = _EndpointInterface(WebhookEndpoint)
    list_title = lazy_gettext("Webhooks")
    show_title = lazy_gettext("Webhook endpoint")
    add_title = lazy_gettext("Add a webhook endpoint")
    edit_title = lazy_gettext("Edit a webhook endpoint")
    base_permissions = ["can_list", "can_show", "can_add", "can_edit"]
    list_columns = ["url", "partner", "kinds_text", "active", "created_at"]
    show_columns = [
        "url", "partner", "description", "kinds_text", "active", "secret", "secret_rotated_at",
        "previous_secret_until", "created_at",
    ]  # fmt: skip
    add_columns = ["partner", "url", "description", "kinds"]
    edit_columns = ["url", "description", "kinds", "active"]
    partner_only_hidden = ("partner",)
    search_columns = ["url", "active", "partner"]
    order_columns = ["url", "active", "created_at"]
    base_order = ("created_at", "desc")
    label_columns = {
        "url": lazy_gettext("Address"),
        "partner": lazy_gettext("Partner"),
        "description": lazy_gettext("Description"),
        "kinds": lazy_gettext("Events sent"),
        "kinds_text": lazy_gettext("Events sent"),
        "active": lazy_gettext("Active"),
        "secret": lazy_gettext("Signing secret"),
        "secret_rotated_at": lazy_gettext("Secret rotated (UTC)"),
        "previous_secret_until": lazy_gettext("Previous secret signs until (UTC)"),
        "created_at": lazy_gettext("Created (UTC)"),
        # Not shown; FAB labels every column all the same.
        "previous_secret": lazy_gettext("Previous secret"),
        "deliveries": lazy_gettext("Webhook deliveries"),
        "partner_id": lazy_gettext("Partner"),
    }
    description_columns = {
        "url": lazy_gettext(
            "Where your system receives the events: an https:// address. Each is a POST of "
            "JSON signed with the secret shown after saving (the Bilheteria-Signature header)."
        ),
        "active": lazy_gettext(
            "An inactive endpoint gets nothing new; what waits for it is sent once it is "
            "active again."
        ),
    }
    add_form_extra_fields = {"kinds": webhook_kinds_field()}
    edit_form_extra_fields = {
        "kinds": webhook_kinds_field(),
        # FAB would require a non-null column's box to be ticked: unticked is "inactive".
        "active": BooleanField(lazy_gettext("Active"), description=description_columns["active"]),
    }
    formatters_columns = {
        column: _utc for column in ("secret_rotated_at", "previous_secret_until", "created_at")
    }
    related_views = [WebhookDeliveryView]

    def on_add(self, item: WebhookEndpoint) -> None:
        endpoints.prepare_endpoint(db.session, item, current_user())

    def on_update(self, item: WebhookEndpoint) -> None:
        endpoints.check_endpoint(item)

    @action(
        "rotate_secret",
        N_("Rotate secret"),
        lazy_gettext(
            "Give the selected endpoints a new signing secret? The old one still signs for a "
            "day, so your system can switch to the new one."
        ),
        "fa-refresh",
    )
    def rotate_secret(self, items: Any) -> Any:
        rotated = self.run_each(
            items,
            lambda endpoint: endpoints.rotate_secret(
                db.session, endpoint.id, current_user(), utcnow()
            ),
            N_("%(count)s secret(s) rotated: the new one is on the endpoint's page."),
        )
        if rotated and not isinstance(items, list):
            return redirect(url_for(".show", pk=items.id))
        return redirect(self.get_redirect())
