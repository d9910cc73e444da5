"""Dashboard landing page: tells each role where to start."""

from __future__ import annotations

from typing import Any

from flask_appbuilder import IndexView, expose

from app.services.scoping import role_names
from app.views.base import current_user


class HomeView(IndexView):
    index_template = "home.html"

    @expose("/")
    def index(self) -> Any:
        user = current_user()
        return self.render_template(
            self.index_template,
            appbuilder=self.appbuilder,
            user=user,
            roles=sorted(role_names(user)),
            partner=getattr(user, "partner", None),
        )
