"""Registers every dashboard view and API with Flask-AppBuilder."""

from __future__ import annotations

from flask import Flask, current_app
from flask_appbuilder import AppBuilder
from flask_limiter.util import get_remote_address

from app.i18n import N_
from app.views import accounts, login_limits
from app.views.audit import AuditEntryView
from app.views.balances import BalanceView
from app.views.catalog import EventSectionView, EventSpotView, EventView, TicketTypeView
from app.views.catalog_api import EventApi, EventSectionApi, EventSpotApi, TicketTypeApi
from app.views.catalog_public_api import CatalogApi, CustomerApi
from app.views.checkin_api import CheckinApi
from app.views.gate_admin import CheckInView, GateAssignmentView, GateDeviceView
from app.views.home import EventOverviewView
from app.views.mail import DemoMailView, OutboxMailView
from app.views.money import LedgerTransactionView, OrderView
from app.views.money_runs import MoneyRunsView
from app.views.orders_api import OrderApi, TicketApi
from app.views.platform import CustomerView, PartnerView
from app.views.promos import PromoCodeApi, PromoCodeView
from app.views.reports import ReportView
from app.views.settlement import (
    PayoutItemView,
    PayoutView,
    SettlementLineView,
    SettlementMismatchView,
    SettlementView,
)
from app.views.shop_api import HoldApi, QueueApi
from app.views.two_factor import TwoFactorView, require_enrolment
from app.views.waitlist import WaitlistEntryView
from app.views.waitlist_api import WaitlistApi
from app.views.webhooks import WebhookDeliveryView, WebhookEndpointView

CATALOG, MONEY, CHECK_IN = N_("Catalog"), N_("Money"), N_("Check-in")
PLATFORM, SECURITY, INTEGRATIONS = N_("Platform"), N_("Security"), N_("Integrations")
# The dashboard's menu: view, name, icon, category (names and categories are msgids: FAB's menu
# translates them).
MENU = (
    (EventView, N_("Events"), "fa-calendar", CATALOG),
    (EventSectionView, N_("Sections"), "fa-th-large", CATALOG),
    (TicketTypeView, N_("Ticket types"), "fa-tags", CATALOG),
    (EventSpotView, N_("Spots"), "fa-th", CATALOG),
    (WaitlistEntryView, N_("Waiting lists"), "fa-hourglass-half", CATALOG),
    (PromoCodeView, N_("Promo codes"), "fa-ticket", CATALOG),
    (OrderView, N_("Orders"), "fa-shopping-cart", MONEY),
    (LedgerTransactionView, N_("Ledger"), "fa-book", MONEY),
    (BalanceView, N_("Balances"), "fa-balance-scale", MONEY),
    (PayoutView, N_("Payouts"), "fa-bank", MONEY),
    (SettlementView, N_("Settlements"), "fa-exchange", MONEY),
    (SettlementMismatchView, N_("Mismatches"), "fa-exclamation-triangle", MONEY),
    (ReportView, N_("Reports"), "fa-file-text-o", MONEY),
    (MoneyRunsView, N_("Money runs"), "fa-play-circle", MONEY),
    (GateDeviceView, N_("Gate devices"), "fa-mobile", CHECK_IN),
    (GateAssignmentView, N_("Gate staff"), "fa-id-badge", CHECK_IN),
    (CheckInView, N_("Scan log"), "fa-qrcode", CHECK_IN),
    (PartnerView, N_("Partners"), "fa-handshake-o", PLATFORM),
    (CustomerView, N_("Customers"), "fa-users", PLATFORM),
    (AuditEntryView, N_("Audit log"), "fa-history", PLATFORM),
    (OutboxMailView, N_("E-mail outbox"), "fa-envelope", PLATFORM),
    (WebhookEndpointView, N_("Webhooks"), "fa-plug", INTEGRATIONS),
    (WebhookDeliveryView, N_("Webhook deliveries"), "fa-paper-plane", INTEGRATIONS),
    (TwoFactorView, N_("Two-factor sign-in"), "fa-key", SECURITY),
)


def register_views(appbuilder: AppBuilder) -> None:
    for view, name, icon, category in MENU:
        appbuilder.add_view(view, name, icon=icon, category=category)
    appbuilder.add_link(
        N_("Waiting-list conversions"),
        href="/waitlistentryview/conversions/",
        icon="fa-line-chart",
        category=CATALOG,
    )
    appbuilder.add_view_no_menu(EventOverviewView)
    appbuilder.add_view_no_menu(PayoutItemView)
    appbuilder.add_view_no_menu(SettlementLineView)
    # Linked in the menu by `flask demo serve` when it runs the catch-all (app/cli.py).
    appbuilder.add_view_no_menu(DemoMailView)
    current_app.before_request(require_enrolment)
    appbuilder.add_api(EventApi)
    appbuilder.add_api(EventSectionApi)
    appbuilder.add_api(EventSpotApi)
    appbuilder.add_api(TicketTypeApi)
    appbuilder.add_api(PromoCodeApi)
    for api in (
        CatalogApi,
        CustomerApi,
        HoldApi,
        OrderApi,
        QueueApi,
        WaitlistApi,
        TicketApi,
        CheckinApi,
    ):
        appbuilder.add_api(api)
    appbuilder.add_api(accounts.PasswordResetApi)


def apply_rate_limits(app: Flask) -> None:
    """Abuse limits on login, sign-up, hold, checkout and joining a line, API and pages alike
    (429 with Retry-After). Runs once every view and blueprint is registered. With
    RATELIMIT_ENABLED off (load tests) the views are left unwrapped: a disabled limit still
    costs its bookkeeping."""
    if not app.config.get("RATELIMIT_ENABLED", True):
        return
    limiter = app.appbuilder.sm.limiter
    login_limits.apply(app)  # one budget for every sign-in endpoint, per address and account
    accounts.apply_limits(app)  # password-reset requests and confirmation resends, per address
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
        ("WaitlistApi.join", "RATELIMIT_QUEUE", None),
        ("shop.join_waitlist", "RATELIMIT_QUEUE", None),
        # A transfer tells whether an e-mail has an account: not a way to list them.
        ("TicketApi.transfer", "RATELIMIT_TRANSFER", None),
        ("shop.transfer_ticket", "RATELIMIT_TRANSFER", None),
    ):
        view = app.view_functions[endpoint]
        limit = limiter.limit(app.config[key], key_func=key_func, methods=["POST"])
        app.view_functions[endpoint] = limit(view)
