"""Balances: a partner sees its own (sales, fees, refunds, payouts, balance, and what of it is
not settled yet, held in reserve, in payouts, available); finance and admins see every
partner's."""

from __future__ import annotations

from typing import Any

from flask_appbuilder import BaseView, expose, has_access

from app.extensions import db
from app.models.base import utcnow
from app.services import payouts
from app.services.scoping import is_platform_staff
from app.views.base import current_user


class BalanceView(BaseView):
    route_base = "/balances"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self) -> Any:
        user = current_user()
        partner_ids = None if is_platform_staff(user) else [getattr(user, "partner_id", None) or 0]
        statements = payouts.partner_balances(db.session, utcnow(), partner_ids)
        db.session.commit()  # accounts created on first look
        return self.render_template("balances.html", statements=statements)
