"""Flask-AppBuilder security: our user model (with partner membership) and its admin view."""

from __future__ import annotations

from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.views import UserDBModelView

from app.models.partner import PartnerUser


class PartnerUserDBModelView(UserDBModelView):
    """Admins attach a user to (at most) one partner here."""

    list_columns = ["first_name", "last_name", "username", "email", "partner", "active", "roles"]
    add_columns = [*UserDBModelView.add_columns, "partner"]
    edit_columns = [*UserDBModelView.edit_columns, "partner"]
    search_columns = ["first_name", "last_name", "username", "email", "active", "roles", "partner"]
    show_fieldsets = [
        ("User info", {"fields": ["username", "active", "roles", "partner", "login_count"]}),
        *UserDBModelView.show_fieldsets[1:],
    ]
    description_columns = {
        "partner": "Partner and gate staff belong to exactly one partner; platform staff to none."
    }


class BilheteriaSecurityManager(SecurityManager):
    user_model = PartnerUser
    userdbmodelview = PartnerUserDBModelView
