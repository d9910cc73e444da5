"""Dashboard landing page: tells each role where to start."""

from __future__ import annotations

from typing import Any

from flask import redirect, url_for
from flask_appbuilder import IndexView, expose

from app.services.scoping import role_names
from app.views.base import current_user


class HomeView(IndexView):
    """The dashboard's landing page; the customer shop owns the site root."""

    route_base = "/dashboard"
    index_template = "home.html"

    @expose("/")
    def index(self) -> Any:
        user = current_user()
        if not (role_names(user) - {"Customer"}):
            # Customers (and visitors) belong in the shop, not the dashboard.
            if user is None or not getattr(user, "is_authenticated", False):
                return redirect(self.appbuilder.get_url_for_login)
            return redirect(url_for("shop.home"))
        return self.render_template(
            self.index_template,
            appbuilder=self.appbuilder,
            user=user,
            roles=sorted(role_names(user)),
            partner=getattr(user, "partner", None),
        )
