"""REST API for events, sections, ticket types and spots (scoped to the user's partner): the
class names are FAB's permission names. The dashboard's views are catalog.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import g, request
from flask_appbuilder.models.sqla.interface import SQLAInterface

from app.models import Event, EventSection, EventSpot, TicketType, local_time
from app.models.event import EVENT_TIMES
from app.views.base import ScopedModelRestApi
from app.views.catalog import EVENT_FORM_COLUMNS
from app.views.catalog_rules import EventRules, SectionRules, SpotRules, TicketTypeRules

EVENT_API_COLUMNS = [
    "id",
    "partner.id",
    "partner.name",
    *EVENT_FORM_COLUMNS[1:],
    "status",
    "cancel_reason",
]


class EventApi(EventRules, ScopedModelRestApi):
    resource_name = "events"
    datamodel = SQLAInterface(Event)
    list_columns = EVENT_API_COLUMNS
    show_columns = EVENT_API_COLUMNS
    add_columns = EVENT_FORM_COLUMNS
    edit_columns = EVENT_FORM_COLUMNS[1:]
    search_columns = ["name", "city", "category", "status", "starts_at"]
    order_columns = ["name", "city", "starts_at", "status"]

    def _init_model_schemas(self) -> None:
        super()._init_model_schemas()
        # Partner users omit it (their own partner is implied); staff must name it (on_add).
        self.add_model_schema.fields["partner"].required = False

    # A time sent with an offset is that instant; one without, the venue's wall clock.
    def on_add(self, item: Event) -> None:
        item.times_from_local(naive_times_sent(request.get_json(silent=True)))
        super().on_add(item)

    def _merge_update_item(self, model_item: Event, data: dict[str, Any]) -> dict[str, Any]:
        # FAB fills the body with the row's other fields (stored UTC): note what was sent first.
        g.naive_event_times = naive_times_sent(data)
        return super()._merge_update_item(model_item, data)

    def on_update(self, item: Event) -> None:
        item.times_from_local(g.pop("naive_event_times", []))
        super().on_update(item)

    # Answered with the venue's offset: "2026-12-26T21:00:00-03:00".
    def pre_get(self, data: dict[str, Any]) -> None:
        with_offsets(data.get("result"))

    def pre_get_list(self, data: dict[str, Any]) -> None:
        for row in data.get("result") or []:
            with_offsets(row)


def naive_times_sent(body: Any) -> list[str]:
    """The event times a JSON body gives without an offset (the venue's local times)."""
    if not isinstance(body, dict):
        return []
    return [
        field
        for field in EVENT_TIMES
        if isinstance(body.get(field), str) and not local_time.has_offset(body[field])
    ]


def with_offsets(row: Any) -> None:
    """An event's times in an API answer (naive UTC as stored) with the venue's offset."""
    if not isinstance(row, dict) or "timezone" not in row:
        return
    for field in EVENT_TIMES:
        if row.get(field):
            utc = dt.datetime.fromisoformat(row[field])
            row[field] = local_time.iso_local(utc, row["timezone"])


class EventSectionApi(SectionRules, ScopedModelRestApi):
    resource_name = "sections"
    datamodel = SQLAInterface(EventSection)
    list_columns = ["id", "event.id", "name", "kind", "price_cents", "hidden", "position"]
    show_columns = [
        *list_columns,
        "available_count",
        "held_count",
        "sold_count",
        "blocked_count",
    ]
    add_columns = ["event", "name", "kind", "price_cents", "hidden", "position"]
    edit_columns = ["name", "kind", "price_cents", "hidden", "position"]
    search_columns = ["event", "name", "kind"]


class TicketTypeApi(TicketTypeRules, ScopedModelRestApi):
    resource_name = "ticket-types"
    datamodel = SQLAInterface(TicketType)
    list_columns = [
        "id", "section.id", "name", "kind", "price_cents", "cap", "public", "hidden", "position",
    ]  # fmt: skip
    show_columns = list_columns
    add_columns = ["section", "name", "kind", "price_cents", "cap", "public", "hidden", "position"]
    edit_columns = ["name", "kind", "price_cents", "cap", "public", "hidden", "position"]
    search_columns = ["section", "name", "kind"]
    order_columns = ["name", "position"]


class EventSpotApi(SpotRules, ScopedModelRestApi):
    resource_name = "spots"
    datamodel = SQLAInterface(EventSpot)
    list_columns = [
        "id",
        "event.id",
        "section.id",
        "label",
        "row_label",
        "seat_number",
        "status",
    ]
    show_columns = list_columns
    add_columns = ["section", "label", "row_label", "seat_number"]
    edit_columns = ["section", "label", "row_label", "seat_number"]
    search_columns = ["event", "section", "label", "status"]
    max_page_size = 1000
