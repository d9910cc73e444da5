"""Waiting lists in the dashboard (services/waitlist.py), scoped to the partner (admins see
every partner's): *Catalog > Waiting lists* lists each entry with its place in line, customer,
section or type, quantity, status and dates; *Conversions* counts, per event, the entries
waiting, offered, converted (paid), expired (the offer unclaimed) and left, and the
conversion rate of the offers that ended."""

from __future__ import annotations

from typing import Any

from flask_appbuilder import expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext

from app.extensions import db
from app.models import Event, WaitlistEntry
from app.services import waitlist_figures
from app.services.scoping import scope_clause
from app.views.base import ScopedModelView, current_user


def _utc(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


class WaitlistEntryView(ScopedModelView):
    datamodel = SQLAInterface(WaitlistEntry)
    list_title = lazy_gettext("Waiting lists")
    show_title = lazy_gettext("Waiting-list entry")
    base_permissions = ["can_list", "can_show", "can_conversions"]
    list_columns = [
        "event", "position", "customer", "section", "ticket_type", "quantity", "status_label",
        "created_at", "offered_at", "offer_expires_at", "ended_at",
    ]  # fmt: skip
    show_columns = [
        "event", "position", "customer", "section", "ticket_type", "quantity", "status_label",
        "created_at", "offered_at", "offer_expires_at", "ended_at", "hold",
    ]  # fmt: skip
    # Nothing is added or edited here (no permission exists for it); FAB still builds forms.
    add_columns = edit_columns = ["quantity"]
    search_columns = ["event", "status", "created_at"]
    order_columns = ["created_at", "offered_at", "quantity"]
    base_order = ("created_at", "asc")
    page_size = 50
    label_columns = {
        "event": lazy_gettext("Event"),
        "position": lazy_gettext("Place in line"),
        "customer": lazy_gettext("Customer"),
        "section": lazy_gettext("Section"),
        "ticket_type": lazy_gettext("Ticket type"),
        "quantity": lazy_gettext("Spots"),
        "status": lazy_gettext("Status"),
        "status_label": lazy_gettext("Status"),
        "created_at": lazy_gettext("Joined (UTC)"),
        "offered_at": lazy_gettext("Offered (UTC)"),
        "offer_expires_at": lazy_gettext("Offer ends (UTC)"),
        "ended_at": lazy_gettext("Ended (UTC)"),
        "hold": lazy_gettext("Hold"),
        # Not shown; FAB labels every column all the same.
        "event_id": lazy_gettext("Event"),
        "customer_id": lazy_gettext("Customer"),
        "section_id": lazy_gettext("Section"),
        "ticket_type_id": lazy_gettext("Ticket type"),
        "hold_id": lazy_gettext("Hold"),
    }
    formatters_columns = {
        column: _utc for column in ("created_at", "offered_at", "offer_expires_at", "ended_at")
    }

    @expose("/conversions/")
    @has_access
    def conversions(self) -> Any:
        """Per event: the list's counts and its conversion rate."""
        figures = waitlist_figures.conversions(db.session, scope_clause(Event, current_user()))
        db.session.rollback()
        return self.render_template("waitlist_conversions.html", figures=figures)
