"""Registers every dashboard view and API with Flask-AppBuilder."""

from __future__ import annotations

from flask import Flask, current_app
from flask_appbuilder import AppBuilder
from flask_limiter.util import get_remote_address

from app.views import login_limits
from app.views.audit import AuditEntryView
from app.views.balances import BalanceView
from app.views.catalog import (
    EventApi,
    EventSectionApi,
    EventSectionView,
    EventSpotApi,
    EventSpotView,
    EventView,
    TicketTypeApi,
    TicketTypeView,
)
from app.views.checkin_api import CheckinApi
from app.views.gate_admin import CheckInView, GateAssignmentView, GateDeviceView
from app.views.home import EventOverviewView
from app.views.money import LedgerTransactionView, OrderView
from app.views.money_runs import MoneyRunsView
from app.views.platform import CustomerView, PartnerView
from app.views.reports import ReportView
from app.views.settlement import (
    PayoutItemView,
    PayoutView,
    SettlementLineView,
    SettlementMismatchView,
    SettlementView,
)
from app.views.shop_api import CatalogApi, CustomerApi, HoldApi, OrderApi, QueueApi
from app.views.two_factor import TwoFactorView, require_enrolment


def register_views(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(EventView, "Events", icon="fa-calendar", category="Catalog")
    appbuilder.add_view(EventSectionView, "Sections", icon="fa-th-large", category="Catalog")
    appbuilder.add_view(TicketTypeView, "Ticket types", icon="fa-tags", category="Catalog")
    appbuilder.add_view(EventSpotView, "Spots", icon="fa-th", category="Catalog")
    appbuilder.add_view(OrderView, "Orders", icon="fa-shopping-cart", category="Money")
    appbuilder.add_view(LedgerTransactionView, "Ledger", icon="fa-book", category="Money")
    appbuilder.add_view(BalanceView, "Balances", icon="fa-balance-scale", category="Money")
    appbuilder.add_view(PayoutView, "Payouts", icon="fa-bank", category="Money")
    appbuilder.add_view(SettlementView, "Settlements", icon="fa-exchange", category="Money")
    appbuilder.add_view(
        SettlementMismatchView, "Mismatches", icon="fa-exclamation-triangle", category="Money"
    )
    appbuilder.add_view(ReportView, "Reports", icon="fa-file-text-o", category="Money")
    appbuilder.add_view(MoneyRunsView, "Money runs", icon="fa-play-circle", category="Money")
    appbuilder.add_view_no_menu(EventOverviewView)
    appbuilder.add_view_no_menu(PayoutItemView)
    appbuilder.add_view_no_menu(SettlementLineView)
    appbuilder.add_view(GateDeviceView, "Gate devices", icon="fa-mobile", category="Check-in")
    appbuilder.add_view(GateAssignmentView, "Gate staff", icon="fa-id-badge", category="Check-in")
    appbuilder.add_view(CheckInView, "Scan log", icon="fa-qrcode", category="Check-in")
    appbuilder.add_view(PartnerView, "Partners", icon="fa-handshake-o", category="Platform")
    appbuilder.add_view(CustomerView, "Customers", icon="fa-users", category="Platform")
    appbuilder.add_view(AuditEntryView, "Audit log", icon="fa-history", category="Platform")
    appbuilder.add_view(TwoFactorView, "Two-factor sign-in", icon="fa-key", category="Security")
    current_app.before_request(require_enrolment)
    appbuilder.add_api(EventApi)
    appbuilder.add_api(EventSectionApi)
    appbuilder.add_api(EventSpotApi)
    appbuilder.add_api(TicketTypeApi)
    for api in (CatalogApi, CustomerApi, HoldApi, OrderApi, QueueApi, CheckinApi):
        appbuilder.add_api(api)


def apply_rate_limits(app: Flask) -> None:
    """Abuse limits on login, sign-up, hold, checkout and joining a line, API and pages alike
    (429 with Retry-After). Runs once every view and blueprint is registered. With
    RATELIMIT_ENABLED off (load tests) the views are left unwrapped: a disabled limit still
    costs its bookkeeping."""
    if not app.config.get("RATELIMIT_ENABLED", True):
        return
    limiter = app.appbuilder.sm.limiter
    login_limits.apply(app)  # one budget for every sign-in endpoint, per address and account
    per_address = get_remote_address  # sign-up: whoever the caller claims to be
    for endpoint, key, key_func in (
        ("CustomerApi.sign_up", "RATELIMIT_SIGNUP", per_address),
        ("shop.signup", "RATELIMIT_SIGNUP", per_address),
        ("HoldApi.post", "RATELIMIT_HOLD", None),
        ("shop.hold", "RATELIMIT_HOLD", None),
        ("HoldApi.checkout", "RATELIMIT_CHECKOUT", None),
        ("shop.pay", "RATELIMIT_CHECKOUT", None),
        # Every join takes a place: joining and leaving in a loop would push the line back.
        ("QueueApi.join", "RATELIMIT_QUEUE", None),
        ("shop.queue", "RATELIMIT_QUEUE", None),
    ):
        view = app.view_functions[endpoint]
        limit = limiter.limit(app.config[key], key_func=key_func, methods=["POST"])
        app.view_functions[endpoint] = limit(view)
