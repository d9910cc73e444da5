"""Partner dashboard for the gates: devices, gate staff per event, the scan log and live entries
(ARCHITECTURE.md, "The scan path"). Every list is limited to the user's partner."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect
from flask_appbuilder import action, has_access
from flask_appbuilder.baseviews import expose
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.sqla.models import Role
from flask_babel import gettext, lazy_gettext

from app.extensions import db
from app.i18n import N_
from app.models import CheckIn, DomainError, GateAssignment, GateDevice, PartnerUser
from app.services.checkin import devices, scanners
from app.services.checkin.stats import entries_by_section_and_gate
from app.services.scoping import is_platform_staff
from app.views.base import PartnerScopeFilter, ScopedModelView, current_user


class GateUserFilter(BaseFilter):
    """Gate users of the current user's partner (all gate users for platform staff)."""

    name = lazy_gettext("Gate users")

    def apply(self, query: Any, value: Any) -> Any:
        actor = current_user()
        query = query.filter(PartnerUser.roles.any(Role.name == "Gate"))
        if is_platform_staff(actor):
            return query
        return query.filter(PartnerUser.partner_id == getattr(actor, "partner_id", None))


class GateDeviceView(ScopedModelView):
    datamodel = SQLAInterface(GateDevice)
    list_title = lazy_gettext("Gate devices")
    show_title = lazy_gettext("Gate device")
    add_title = lazy_gettext("Register a gate device")
    base_permissions = ["can_list", "can_show", "can_add", "can_edit"]
    list_columns = ["name", "partner", "events", "status", "token_hint", "created_at"]
    show_columns = [*list_columns, "revoked_at"]
    add_columns = ["name", "events"]
    edit_columns = ["name", "events"]
    search_columns = ["name", "partner"]
    order_columns = ["name", "created_at"]
    base_order = ("created_at", "desc")
    label_columns = {"token_hint": lazy_gettext("Token starts with")}
    description_columns = {
        "events": lazy_gettext(
            "The events this device validates. Its token is shown once, after saving."
        ),
    }
    add_form_query_rel_fields = {"events": [["id", PartnerScopeFilter, None]]}
    edit_form_query_rel_fields = {"events": [["id", PartnerScopeFilter, None]]}

    def on_add(self, item: GateDevice) -> None:
        g.device_token = devices.prepare_device(db.session, current_user(), item)

    def on_update(self, item: GateDevice) -> None:
        if item.revoked_at is not None:
            raise DomainError(gettext("A revoked device cannot be changed: register a new one."))
        devices.check_device(db.session, current_user(), item)

    def post_add(self, item: GateDevice) -> None:
        flash(
            gettext(
                "Device token for %(name)s (shown only now: enter it on the device): "
                "%(device_token)s",
                name=item.name,
                device_token=g.device_token,
            ),
            "warning",
        )

    def post_update(self, item: GateDevice) -> None:
        scanners.device_changed(item)

    @action(
        "revoke",
        N_("Revoke"),
        lazy_gettext("Revoke the selected devices? They are refused at once."),
        "fa-ban",
    )
    def revoke(self, items: Any) -> Any:
        self.run_each(
            items,
            lambda device: devices.revoke_device(db.session, current_user(), device.id),
            N_("%(count)s device(s) revoked."),
        )
        return redirect(self.get_redirect())


class GateAssignmentView(ScopedModelView):
    datamodel = SQLAInterface(GateAssignment)
    list_title = lazy_gettext("Gate staff")
    add_title = lazy_gettext("Assign a gate user to an event")
    base_permissions = ["can_list", "can_add", "can_delete"]
    list_columns = ["user", "event", "created_at"]
    add_columns = ["user", "event"]
    search_columns = ["event"]
    add_form_query_rel_fields = {"user": [["id", GateUserFilter, None]]}

    def on_add(self, item: GateAssignment) -> None:
        if item.user is None:
            raise DomainError(gettext("Choose a gate user."), field="user")
        if item.event is None:
            raise DomainError(gettext("Choose an event."), field="event")
        if item.user.partner_id != item.event.partner_id or "Gate" not in {
            r.name for r in item.user.roles
        }:
            raise DomainError(gettext("Choose a gate user of this event's partner."), field="user")

    def post_add(self, item: GateAssignment) -> None:
        scanners.staff_changed(item.user_id)

    def post_delete(self, item: GateAssignment) -> None:
        scanners.staff_changed(item.user_id)


class CheckInView(ScopedModelView):
    datamodel = SQLAInterface(CheckIn)
    list_title = lazy_gettext("Scan log")
    base_permissions = ["can_list", "can_show", "can_live", "can_export_csv"]
    list_columns = [
        "scanned_at", "event", "gate", "direction", "result", "seat", "holder", "device",
        "offline", "conflict",
    ]  # fmt: skip
    show_columns = [*list_columns, "device_verdict", "nonce", "recorded_at"]
    search_columns = ["event", "result", "gate", "direction", "offline", "conflict", "scanned_at"]
    order_columns = ["scanned_at", "gate", "result"]
    base_order = ("scanned_at", "desc")
    label_columns = {
        "conflict": lazy_gettext("Offline conflict"),
        # The ticket's holder now: a transferred ticket's scans name its new holder.
        "holder": lazy_gettext("Holder"),
        "device_verdict": lazy_gettext("Device showed"),
    }

    @expose("/live/<int:event_id>")
    @has_access
    def live(self, event_id: int) -> Any:
        """Entries so far by section and by gate, rejected scans by result, conflicts."""
        try:
            stats = entries_by_section_and_gate(db.session, current_user(), event_id)
        except DomainError:
            abort(404)
        return self.render_template("checkin/live.html", stats=stats)
