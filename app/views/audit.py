"""The audit log in the dashboard: read only, for admins (every entry) and partners (their own
partner's entries, through the partner scope's base filter like every partner-owned view).

No actions at all: FAB's bulk actions fetch rows without base filters (ScopedModelView fetches
them through the scope, but an audit log has nothing to act on), and no add, edit or delete
permission exists, so nobody, admins included, changes an entry from here.
"""

from __future__ import annotations

from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext

from app.models import AuditEntry
from app.views.base import ScopedModelView


class AuditEntryView(ScopedModelView):
    datamodel = SQLAInterface(AuditEntry)
    list_title = lazy_gettext("Audit log")
    base_permissions = ["can_list", "can_show", "can_export_csv"]
    list_columns = ["at", "actor_name", "action", "object", "partner", "changes_text"]
    show_columns = [
        "at",
        "actor_name",
        "actor_roles",
        "actor_id",
        "source",
        "request_id",
        "ip",
        "partner",
        "object_type",
        "object_id",
        "object_label",
        "action",
        "changes_text",
    ]
    # Nothing is added or edited here (no permission exists for it); FAB still builds forms.
    add_columns = edit_columns = ["action"]
    search_columns = [
        "object_type",
        "object_id",
        "object_label",
        "action",
        "actor_name",
        "at",
        "partner",
    ]
    order_columns = ["at", "actor_name", "action"]
    base_order = ("id", "desc")
    page_size = 50
    label_columns = {
        "at": lazy_gettext("When (UTC)"),
        "actor_name": lazy_gettext("Who"),
        "actor_roles": lazy_gettext("Roles"),
        "actor_id": lazy_gettext("User id"),
        "source": lazy_gettext("From"),
        "request_id": lazy_gettext("Request id"),
        "ip": lazy_gettext("IP address"),
        "object_type": lazy_gettext("Object type"),
        "object_id": lazy_gettext("Object id"),
        "object_label": lazy_gettext("Object name"),
        "changes_text": lazy_gettext("Changes (before -> after)"),
    }
