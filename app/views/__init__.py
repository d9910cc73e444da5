"""Registers every dashboard view and API with Flask-AppBuilder."""

from __future__ import annotations

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


def register_views(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(EventView, "Events", icon="fa-calendar", category="Catalog")
    appbuilder.add_view(EventSectionView, "Sections", icon="fa-th-large", category="Catalog")
    appbuilder.add_view(EventSpotView, "Spots", icon="fa-th", category="Catalog")
    appbuilder.add_view(PartnerView, "Partners", icon="fa-handshake-o", category="Platform")
    appbuilder.add_view(CustomerView, "Customers", icon="fa-users", category="Platform")
    appbuilder.add_api(EventApi)
    appbuilder.add_api(EventSectionApi)
    appbuilder.add_api(EventSpotApi)
