"""What adding, changing or deleting a catalog row checks (events, sections, ticket types,
spots): FAB's hooks, shared by the partner dashboard (catalog.py) and the REST API
(catalog_api.py)."""

from __future__ import annotations

from flask import current_app
from flask_babel import gettext

from app.extensions import db
from app.models import DomainError, Event, EventSection, EventSpot, Ticket, TicketType
from app.services import events as event_service
from app.views.base import current_user


class EventRules:
    def on_add(self, item: Event) -> None:
        item.check_checkin_window()
        item.check_refund_window()
        item.check_waiting_room()
        item.check_transfer_rules()
        item.check_waitlist_offer()
        event_service.claim_new_event(
            db.session, item, current_user(), current_app.config["DEFAULT_CURRENCY"]
        )

    def on_update(self, item: Event) -> None:
        item.check_checkin_window()
        item.check_refund_window()
        item.check_waiting_room()
        item.check_transfer_rules()
        item.check_waitlist_offer()
        item.check_changes()

    def on_delete(self, item: Event) -> None:
        item.check_deletable()


class SectionRules:
    def on_add(self, item: EventSection) -> None:
        item.validate()
        if item.event is not None and item.event.is_cancelled:
            raise DomainError(gettext("The event is cancelled."), field="event")

    def on_update(self, item: EventSection) -> None:
        item.check_changes()

    def on_delete(self, item: EventSection) -> None:
        item.check_deletable()


class TicketTypeRules:
    def on_add(self, item: TicketType) -> None:
        item.check()
        if item.section is not None and item.section.event.is_cancelled:
            raise DomainError(gettext("The event is cancelled."), field="section")

    def on_update(self, item: TicketType) -> None:
        item.check()

    def on_delete(self, item: TicketType) -> None:
        if item.id is not None and db.session.scalar(
            db.select(db.func.count(Ticket.id)).where(Ticket.ticket_type_id == item.id)
        ):
            raise DomainError(
                gettext(
                    "Tickets of this type were sold: it stays (take it out of the shop instead)."
                ),
                field="public",
            )


class SpotRules:
    def on_add(self, item: EventSpot) -> None:
        item.check_changes()
        item.position = event_service.last_spot_position(db.session, item.section.id) + 1

    def on_update(self, item: EventSpot) -> None:
        item.check_changes()

    def on_delete(self, item: EventSpot) -> None:
        item.check_deletable()
