"""The dashboard's home and an event's overview: the business at a glance.

A partner's users see their partner's sales today and over the period, revenue, and for each
event on sale its tickets by section, check-in progress and sales per day; platform staff
(admins, finance) see the same across partners, with a breakdown per partner; gate staff see
their events' check-in progress only. Figures come from services/dashboard_stats.py; charts
are inline SVG drawn here (views/charts.py). Times are UTC.
"""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, request, url_for
from flask_appbuilder import BaseView, IndexView, expose, has_access
from flask_babel import gettext

from app.extensions import db
from app.models import DomainError
from app.models.base import utcnow
from app.services import dashboard_stats
from app.services.dashboard_stats import EventFigures
from app.services.scoping import is_platform_staff, role_names
from app.views.base import current_user
from app.views.charts import Bar, bar_chart


def period_days() -> int:
    """The period the reader chose (``?days=``), one of dashboard_stats.PERIODS."""
    raw = request.args.get("days")
    if raw is None:
        return dashboard_stats.DEFAULT_PERIOD
    if raw not in {str(days) for days in dashboard_stats.PERIODS}:
        abort(400, description=gettext("days must be one of 7, 30 or 90."))
    return int(raw)


def sales_chart(event: EventFigures, *, height: int = 120) -> Any:
    """The event's tickets sold per day of the period, as bars (a date under every 7th)."""
    last = len(event.series) - 1
    bars = [
        Bar(
            point.tickets,
            (point.day.strftime(gettext("%m-%d")) if (last - index) % 7 == 0 else ""),
            gettext(
                "%(day)s: %(tickets)s ticket(s), %(revenue)s",
                day=point.day.isoformat(),
                tickets=point.tickets,
                revenue=event.money(point.revenue_cents),
            ),
        )
        for index, point in enumerate(event.series)
    ]
    title = gettext("Tickets sold per day: %(event)s", event=event.name)
    return bar_chart(bars, title=title, height=height)


class HomeView(IndexView):
    """The dashboard's landing page; the customer shop owns the site root."""

    route_base = "/dashboard"
    index_template = "home.html"

    @expose("/")
    def index(self) -> Any:
        user = current_user()
        roles = role_names(user)
        if not (roles - {"Customer"}):
            # Customers (and visitors) belong in the shop, not the dashboard.
            if user is None or not getattr(user, "is_authenticated", False):
                return redirect(self.appbuilder.get_url_for_login)
            return redirect(url_for("shop.home"))
        days = period_days()
        figures = None
        if is_platform_staff(user) or getattr(user, "partner_id", None) is not None:
            figures = dashboard_stats.home(db.session, user, utcnow(), days)
        db.session.rollback()
        return self.render_template(
            self.index_template,
            appbuilder=self.appbuilder,
            user=user,
            roles=sorted(roles),
            partner=getattr(user, "partner", None),
            figures=figures,
            money_shown=bool(roles & {"Admin", "Finance", "Partner"}),
            charts={e.id: sales_chart(e) for e in figures.events} if figures else {},
            periods=dashboard_stats.PERIODS,
        )


class EventOverviewView(BaseView):
    """One event's figures: sales today and over the period, tickets and revenue by section,
    check-in progress, sales per day."""

    route_base = "/eventoverview"
    default_view = "show"

    @expose("/<int:event_id>")
    @has_access
    def show(self, event_id: int) -> Any:
        days = period_days()
        try:
            figures = dashboard_stats.overview(db.session, current_user(), event_id, utcnow(), days)
        except DomainError:
            abort(404)
        finally:
            db.session.rollback()
        [event] = figures.events
        return self.render_template(
            "event_overview.html",
            figures=figures,
            event=event,
            chart=sales_chart(event, height=200),
            periods=dashboard_stats.PERIODS,
        )
