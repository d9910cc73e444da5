"""Registers every dashboard view and API with Flask-AppBuilder."""

from __future__ import annotations

from flask import current_app
from flask_appbuilder import AppBuilder

from app.views.catalog import (
    EventApi,
    EventSectionApi,
    EventSectionView,
    EventSpotApi,
    EventSpotView,
    EventView,
)
from app.views.platform import CustomerView, PartnerView
from app.views.shop_api import CatalogApi, CustomerApi, HoldApi, OrderApi


def register_views(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(EventView, "Events", icon="fa-calendar", category="Catalog")
    appbuilder.add_view(EventSectionView, "Sections", icon="fa-th-large", category="Catalog")
    appbuilder.add_view(EventSpotView, "Spots", icon="fa-th", category="Catalog")
    appbuilder.add_view(PartnerView, "Partners", icon="fa-handshake-o", category="Platform")
    appbuilder.add_view(CustomerView, "Customers", icon="fa-users", category="Platform")
    appbuilder.add_api(EventApi)
    appbuilder.add_api(EventSectionApi)
    appbuilder.add_api(EventSpotApi)
    for api in (CatalogApi, CustomerApi, HoldApi, OrderApi):
        appbuilder.add_api(api)
    apply_rate_limits(appbuilder)


def apply_rate_limits(appbuilder: AppBuilder) -> None:
    """Abuse limits on login, sign-up, hold and checkout (429 with Retry-After)."""
    app = current_app
    limiter = appbuilder.sm.limiter
    for endpoint, key in (
        ("SecurityApi.login", "RATELIMIT_LOGIN"),
        ("AuthDBView.login", "RATELIMIT_LOGIN"),
        ("CustomerApi.sign_up", "RATELIMIT_SIGNUP"),
        ("HoldApi.post", "RATELIMIT_HOLD"),
        ("HoldApi.checkout", "RATELIMIT_CHECKOUT"),
    ):
        view = app.view_functions[endpoint]
        app.view_functions[endpoint] = limiter.limit(app.config[key], methods=["POST"])(view)
