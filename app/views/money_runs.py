"""*Money > Money runs*: finance and admins run the settlement of a day or the payout run now,
after a confirmation page, through the functions the scheduled tasks call
(services/money_runs.py). Partners have no permission here (403)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access

from app.extensions import db
from app.models import DomainError
from app.models.base import utcnow
from app.services import money_runs, settlement
from app.services.payments import gateway

TEMPLATE = "money_runs.html"


class MoneyRunsView(BaseView):
    route_base = "/moneyruns"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self) -> Any:
        return self._page()

    @expose("/settle", methods=["GET", "POST"])
    @has_access
    def settle(self) -> Any:
        """GET: what settling the day would do, and a button to confirm; POST: settle it."""
        values = request.form if request.method == "POST" else request.args
        raw = values.get("day", "").strip()
        try:
            day = dt.date.fromisoformat(raw) if len(raw) == 10 else None
        except ValueError:
            day = None
        if day is None:
            return self._page(error=f"Give the day as YYYY-MM-DD (got {raw[:20]!r}).", status=400)
        try:
            if request.method == "GET":
                preview = money_runs.preview_day(db.session, day)
                return self.render_template(TEMPLATE, confirm="settle", preview=preview)
            [summary] = money_runs.settle(db.session, day)
        except DomainError as err:
            db.session.rollback()
            return self._page(error=err.message, status=err.status, day=raw)
        flash(money_runs.describe_settlement(summary), "success")
        return redirect(url_for("SettlementView.list"))

    @expose("/payouts", methods=["GET", "POST"])
    @has_access
    def payouts(self) -> Any:
        """GET: who the payout run would pay, and a button to confirm; POST: run it."""
        if request.method == "GET":
            due = money_runs.preview_payouts(db.session)
            db.session.rollback()
            return self.render_template(TEMPLATE, confirm="payouts", due=due)
        made = money_runs.payouts_now(db.session)
        flash(money_runs.describe_payouts(db.session, made), "success" if made else "info")
        return redirect(url_for("PayoutView.list"))

    def _page(self, *, error: str | None = None, status: int = 200, day: str = "") -> Any:
        today = utcnow().date()
        due = settlement.due_days(db.session, gateway().name, today)
        db.session.rollback()
        page = self.render_template(
            TEMPLATE,
            confirm=None,
            error=error,
            day=day or (today - dt.timedelta(days=1)).isoformat(),
            latest=(today - dt.timedelta(days=1)).isoformat(),
            due_days=due,
        )
        return page, status
