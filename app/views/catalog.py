"""Partner dashboard for events, sections, ticket types and spots (scoped to the user's partner);
their REST API is catalog_api.py, the rules both apply catalog_rules.py."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, url_for
from flask_appbuilder import action, expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext, lazy_gettext
from wtforms import BooleanField, IntegerField
from wtforms.validators import NumberRange, Optional

from app.extensions import db
from app.i18n import N_
from app.models import DomainError, Event, EventSection, EventSpot, TicketType
from app.models.event import (
    DEFAULT_TRANSFERS_UNTIL_HOURS,
    DEFAULT_WAITLIST_OFFER_MINUTES,
    EVENT_TIMES,
    MAX_REFUND_WINDOW_HOURS,
    MAX_WAITLIST_OFFER_MINUTES,
)
from app.services import courtesy
from app.services import events as event_service
from app.services.checkin.arming import arm_owned_event
from app.views.base import ScopedModelView, current_user
from app.views.catalog_rules import EventRules, SectionRules, SpotRules, TicketTypeRules
from app.views.forms import (
    CancelEventForm,
    CourtesyForm,
    GenerateSpotsForm,
    currency_field,
    datetime_field,
    kind_field,
    position_field,
    price_field,
    ticket_kind_field,
    timezone_field,
)

EVENT_FORM_COLUMNS = [
    "partner",
    "name",
    "description",
    "venue",
    "city",
    "address",
    "category",
    "timezone",
    "starts_at",
    "ends_at",
    "sales_start",
    "sales_end",
    "image_url",
    "currency",
    "checkin_opens_at",
    "checkin_closes_at",
    "allow_reentry",
    "refund_window_hours",
    "waiting_room_per_minute",
    "named_tickets",
    "transfers_allowed",
    "transfers_until_hours",
    "waitlist_offer_minutes",
]
EVENT_DESCRIPTIONS = {
    "timezone": lazy_gettext(
        "The venue's time zone: every time below is its local time (Brasília's by default)."
    ),
    "starts_at": lazy_gettext("The venue's local time."),
    "sales_start": lazy_gettext(
        "When tickets go on sale (venue's time). Empty: as soon as the event is published."
    ),
    "sales_end": lazy_gettext("When sales close (venue's time). Empty: when the event starts."),
    "currency": lazy_gettext("ISO 4217 code; default BRL. Fixed once the event has sales."),
    "checkin_opens_at": lazy_gettext(
        "When the gates start letting people in (venue's time). Empty: 6 h before the start."
    ),
    "checkin_closes_at": lazy_gettext(
        "When the gates stop (venue's time). Empty: the end, or 12 hours after the start."
    ),
    "allow_reentry": lazy_gettext("An exit scan lets the holder in once more."),
    "refund_window_hours": lazy_gettext(
        "Customers may cancel for a full refund until this many hours before the "
        "start. Empty: no self-service cancellation."
    ),
    "waiting_room_per_minute": lazy_gettext(
        "For a high-demand on-sale: buyers wait in line and come in to choose seats "
        "at this many per minute, first come, first served. Empty: no waiting room."
    ),
    "named_tickets": lazy_gettext(
        "The buyer gives each ticket's holder's name at checkout; the gate shows it."
    ),
    "transfers_allowed": lazy_gettext(
        "A ticket's holder may be renamed, and the ticket transferred to another customer "
        "(its code is reissued)."
    ),
    "transfers_until_hours": lazy_gettext(
        "Renaming and transfers close this many hours before the start."
    ),
    "waitlist_offer_minutes": lazy_gettext(
        "When spots of a sold-out event come back, the first in its waiting list gets them "
        "on hold for this many minutes (60 by default); unpaid, they go to the next."
    ),
}


HIDDEN_DESCRIPTION = lazy_gettext(
    "A presale's: not shown in the shop, and sold only to buyers with a promo code for it."
)


def hidden_field() -> BooleanField:
    # FAB would require a non-null column's box to be ticked: unticked is "not hidden".
    return BooleanField(lazy_gettext("Hidden (presale)"), description=HIDDEN_DESCRIPTION)


class EventSpotView(SpotRules, ScopedModelView):
    datamodel = SQLAInterface(EventSpot)
    list_title = lazy_gettext("Spots")
    list_columns = ["event", "section", "label", "row_label", "seat_number", "status"]
    show_columns = ["event", "section", "label", "row_label", "seat_number", "status", "held_until"]
    add_columns = ["section", "label", "row_label", "seat_number"]
    edit_columns = ["section", "label", "row_label", "seat_number"]
    search_columns = ["event", "section", "label", "row_label", "status"]
    order_columns = ["label", "row_label", "seat_number", "status"]
    base_order = ("position", "asc")
    label_columns = {"row_label": lazy_gettext("Row"), "seat_number": lazy_gettext("Seat")}
    description_columns = {"row_label": lazy_gettext("Empty for general admission.")}
    page_size = 50

    @action(
        "block",
        N_("Block"),
        lazy_gettext("Block the selected spots? Blocked spots are not sold."),
        "fa-ban",
    )
    def block(self, items: Any) -> Any:
        return self._set_blocked(items, blocked=True)

    @action("unblock", N_("Unblock"), None, "fa-check")
    def unblock(self, items: Any) -> Any:
        return self._set_blocked(items, blocked=False)

    def _set_blocked(self, items: Any, *, blocked: bool) -> Any:
        items = items if isinstance(items, list) else [items]
        try:
            count = event_service.set_spots_blocked(
                db.session, [spot.id for spot in items], current_user(), blocked=blocked
            )
        except DomainError as err:
            db.session.rollback()
            flash(err.message, "danger")
        else:
            flash(
                gettext("%(count)s spot(s) blocked.", count=count)
                if blocked
                else gettext("%(count)s spot(s) unblocked.", count=count),
                "success",
            )
        return redirect(self.get_redirect())


class TicketTypeView(TicketTypeRules, ScopedModelView):
    datamodel = SQLAInterface(TicketType)
    list_title = lazy_gettext("Ticket types")
    list_columns = ["section", "name", "kind", "price", "cap", "public", "hidden"]
    show_columns = ["section", "name", "kind", "price", "cap", "public", "hidden", "position"]
    add_columns = [
        "section", "name", "kind", "price_amount", "cap", "public", "hidden", "position",
    ]  # fmt: skip
    edit_columns = ["name", "kind", "price_amount", "cap", "public", "hidden", "position"]
    search_columns = ["section", "name", "kind"]
    order_columns = ["name", "kind", "position"]
    base_order = ("position", "asc")
    label_columns = {
        "price_amount": lazy_gettext("Price"),
        "cap": lazy_gettext("Most tickets of this type"),
    }
    error_fields = {"price_cents": "price_amount"}
    description_columns = {
        "kind": lazy_gettext("Half price (meia-entrada): the gate asks for the holder's document."),
        "cap": lazy_gettext(
            "Of the section's tickets (valid or held), at most this many of this type; half price"
            " is capped at 40 percent of the tickets on sale (Lei 12.933/2013). Empty: no"
            " cap."
        ),
        "public": lazy_gettext(
            "Offered in the shop (a courtesy type is not: the partner gives those)."
        ),
        "position": lazy_gettext("Order on the event page (lower first)."),
        "hidden": HIDDEN_DESCRIPTION,
    }
    add_form_extra_fields = {
        "price_amount": price_field(),
        "kind": ticket_kind_field(),
        "hidden": hidden_field(),
        "position": position_field(),
    }
    edit_form_extra_fields = add_form_extra_fields

    @action("give", N_("Give courtesy tickets"), None, "fa-gift", multiple=False)
    def give_action(self, item: TicketType) -> Any:
        return redirect(url_for(".give", pk=item.id))

    @expose("/give/<int:pk>", methods=["GET", "POST"])
    @has_access
    def give(self, pk: int) -> Any:
        def submit(kind: TicketType, form: CourtesyForm) -> Any:
            given = courtesy.give(
                db.session, current_user(), kind.id, form.email.data, form.quantity.data
            )
            flash(
                gettext(
                    "%(count)s courtesy ticket(s) given (order %(order)s).",
                    count=len(given.ticket_ids),
                    order=given.order_id,
                ),
                "success",
            )
            return redirect(url_for(".list"))

        return self.row_form(
            pk,
            CourtesyForm,
            submit,
            title=lambda kind: gettext("Give %(type)s tickets", type=kind.name),
            columns=lambda _kind: ["email", "quantity"],
        )


class EventSectionView(SectionRules, ScopedModelView):
    datamodel = SQLAInterface(EventSection)
    list_title = lazy_gettext("Sections")
    list_columns = [
        "event",
        "name",
        "kind",
        "price",
        "available_count",
        "held_count",
        "sold_count",
        "blocked_count",
    ]
    show_columns = [
        "event",
        "name",
        "kind",
        "price",
        "hidden",
        "position",
        "available_count",
        "held_count",
        "sold_count",
        "blocked_count",
    ]
    add_columns = ["event", "name", "kind", "price_amount", "hidden", "position"]
    edit_columns = ["name", "kind", "price_amount", "hidden", "position"]
    search_columns = ["event", "name", "kind"]
    order_columns = ["name", "kind", "position"]
    base_order = ("position", "asc")
    label_columns = {
        "price_amount": lazy_gettext("Price"),
        "available_count": lazy_gettext("Available"),
        "held_count": lazy_gettext("Held"),
        "sold_count": lazy_gettext("Sold"),
        "blocked_count": lazy_gettext("Blocked"),
    }
    description_columns = {
        "position": lazy_gettext("Order on the event page (lower first)."),
        "price_amount": lazy_gettext("Tickets already sold keep the price they were sold at."),
        "hidden": HIDDEN_DESCRIPTION,
    }
    add_form_extra_fields = {
        "price_amount": price_field(),
        "kind": kind_field(),
        "position": position_field(),
        "hidden": hidden_field(),
    }
    edit_form_extra_fields = add_form_extra_fields
    error_fields = {"price_cents": "price_amount"}
    related_views = [TicketTypeView, EventSpotView]

    @action("generate", N_("Generate spots"), None, "fa-th", multiple=False)
    def generate_action(self, item: EventSection) -> Any:
        return redirect(url_for(".generate", pk=item.id))

    @expose("/generate/<int:pk>", methods=["GET", "POST"])
    @has_access
    def generate(self, pk: int) -> Any:
        def submit(section: EventSection, form: GenerateSpotsForm) -> Any:
            count = event_service.generate_spots(
                db.session,
                section.id,
                current_user(),
                first_row=form.first_row.data,
                last_row=form.last_row.data,
                seats_per_row=form.seats_per_row.data,
                quantity=form.quantity.data,
                prefix=form.prefix.data or "",
            )
            flash(
                gettext("%(count)s spots generated in %(name)s.", count=count, name=section.name),
                "success",
            )
            return redirect(url_for("EventSpotView.list", _flt_0_section=section.id))

        return self.row_form(
            pk,
            GenerateSpotsForm,
            submit,
            title=lambda section: f"Generate spots in {section}",
            columns=lambda section: (
                ["quantity", "prefix"]
                if section.is_general_admission
                else ["first_row", "last_row", "seats_per_row", "prefix"]
            ),
        )


# FAB makes every NOT NULL column required, and a required checkbox must be ticked.
# Show and list columns reading an event's time in the venue's zone ("26/12/2026 21:00 BRT").
LOCAL_COLUMNS = {field: field.replace("_at", "") + "_local" for field in EVENT_TIMES}
LOCAL_LABELS = {
    "starts_local": lazy_gettext("Starts"),
    "ends_local": lazy_gettext("Ends"),
    "sales_start_local": lazy_gettext("Sales start"),
    "sales_end_local": lazy_gettext("Sales end"),
    "checkin_opens_local": lazy_gettext("Check-in opens"),
    "checkin_closes_local": lazy_gettext("Check-in closes"),
    "published_local": lazy_gettext("Published"),
    "cancelled_local": lazy_gettext("Cancelled"),
}

REENTRY_FIELD = {
    "allow_reentry": BooleanField(
        lazy_gettext("Allow re-entry"),
        description=EVENT_DESCRIPTIONS["allow_reentry"],
        default=False,
    ),
    "named_tickets": BooleanField(
        lazy_gettext("Named tickets"),
        description=EVENT_DESCRIPTIONS["named_tickets"],
        default=False,
    ),
    "transfers_allowed": BooleanField(
        lazy_gettext("Allow transfers"),
        description=EVENT_DESCRIPTIONS["transfers_allowed"],
        default=True,
    ),
    "transfers_until_hours": IntegerField(
        lazy_gettext("Transfers close (hours before the start)"),
        description=EVENT_DESCRIPTIONS["transfers_until_hours"],
        default=DEFAULT_TRANSFERS_UNTIL_HOURS,
        validators=[Optional(), NumberRange(min=0, max=MAX_REFUND_WINDOW_HOURS)],
    ),
    "waitlist_offer_minutes": IntegerField(
        lazy_gettext("Waiting-list offer (minutes)"),
        description=EVENT_DESCRIPTIONS["waitlist_offer_minutes"],
        default=DEFAULT_WAITLIST_OFFER_MINUTES,
        validators=[Optional(), NumberRange(min=1, max=MAX_WAITLIST_OFFER_MINUTES)],
    ),
}


class EventView(EventRules, ScopedModelView):
    datamodel = SQLAInterface(Event)
    list_title = lazy_gettext("Events")
    list_columns = ["name", "partner", "city", "venue", "starts_local", "status"]
    show_columns = [
        *(LOCAL_COLUMNS.get(column, column) for column in EVENT_FORM_COLUMNS),
        "status",
        "cancel_reason",
        "published_local",
        "cancelled_local",
    ]
    add_columns = EVENT_FORM_COLUMNS
    edit_columns = EVENT_FORM_COLUMNS[1:]
    search_columns = ["name", "city", "venue", "category", "status", "starts_at", "partner"]
    order_columns = ["name", "city", "starts_at", "status"]
    base_order = ("starts_at", "asc")
    partner_only_hidden = ("partner",)
    description_columns = EVENT_DESCRIPTIONS
    label_columns = {
        "starts_at": lazy_gettext("Starts"),
        "ends_at": lazy_gettext("Ends"),
        "timezone": lazy_gettext("Time zone"),
        **LOCAL_LABELS,
        "image_url": lazy_gettext("Image URL"),
        "waiting_room_per_minute": lazy_gettext("Waiting room (buyers let in per minute)"),
        "named_tickets": lazy_gettext("Named tickets"),
        "transfers_allowed": lazy_gettext("Allow transfers"),
        "transfers_until_hours": lazy_gettext("Transfers close (hours before the start)"),
        "waitlist_offer_minutes": lazy_gettext("Waiting-list offer (minutes)"),
    }
    add_form_extra_fields = {
        "currency": currency_field(),
        "timezone": timezone_field(),
        "starts_at": datetime_field(lazy_gettext("Starts"), required=True),
        "ends_at": datetime_field(lazy_gettext("Ends")),
        "sales_start": datetime_field(lazy_gettext("Sales start")),
        "sales_end": datetime_field(lazy_gettext("Sales end")),
        "checkin_opens_at": datetime_field(lazy_gettext("Check-in opens")),
        "checkin_closes_at": datetime_field(lazy_gettext("Check-in closes")),
        **REENTRY_FIELD,
    }
    edit_form_extra_fields = add_form_extra_fields
    related_views = [EventSectionView]

    # The form's times are the venue's wall clock (its time zone): stored as UTC, shown back so.
    def on_add(self, item: Event) -> None:
        item.times_from_local(EVENT_TIMES)
        super().on_add(item)

    def on_update(self, item: Event) -> None:
        item.times_from_local(EVENT_TIMES)
        super().on_update(item)

    def prefill_form(self, form: Any, pk: Any) -> None:
        item = self.datamodel.get(pk, self._base_filters)
        for field in EVENT_TIMES:
            if field in form:
                form[field].data = item.local_naive(field)

    @action("publish", N_("Publish"), lazy_gettext("Publish the selected events?"), "fa-bullhorn")
    def publish(self, items: Any) -> Any:
        self.run_each(
            items,
            lambda e: event_service.publish_event(db.session, e.id, current_user()),
            N_("%(count)s event(s) published."),
        )
        return redirect(self.get_redirect())

    @action(
        "unpublish",
        N_("Unpublish"),
        lazy_gettext("Take the selected events off sale?"),
        "fa-eye-slash",
    )
    def unpublish(self, items: Any) -> Any:
        self.run_each(
            items,
            lambda e: event_service.unpublish_event(db.session, e.id, current_user()),
            N_("%(count)s event(s) unpublished."),
        )
        return redirect(self.get_redirect())

    @action(
        "arm_checkin",
        N_("Arm for check-in"),
        lazy_gettext(
            "Copy what the gates need into Redis now? (Done automatically before doors open.)"
        ),
        "fa-shield",
    )
    def arm_checkin(self, items: Any) -> Any:
        self.run_each(
            items,
            lambda event: arm_owned_event(db.session, current_user(), event.id),
            N_("%(count)s event(s) armed for check-in."),
        )
        return redirect(self.get_redirect())

    @action("overview", N_("Overview"), None, "fa-bar-chart", multiple=False)
    def overview(self, item: Event) -> Any:
        """Sales, revenue, tickets by section, check-in progress and sales per day."""
        return redirect(url_for("EventOverviewView.show", event_id=item.id))

    @action("checkin", N_("Check-in live"), None, "fa-qrcode", multiple=False)
    def checkin_live(self, item: Event) -> Any:
        return redirect(url_for("CheckInView.live", event_id=item.id))

    @action("cancel_event", N_("Cancel event"), None, "fa-times-circle", multiple=False)
    def cancel_action(self, item: Event) -> Any:
        return redirect(url_for(".cancel", pk=item.id))

    @expose("/cancel/<int:pk>", methods=["GET", "POST"])
    @has_access
    def cancel(self, pk: int) -> Any:
        def submit(event: Event, form: CancelEventForm) -> Any:
            event_service.cancel_event(db.session, event.id, current_user(), form.reason.data)
            flash(gettext("%(name)s is cancelled.", name=event.name), "success")
            return redirect(url_for(".show", pk=event.id))

        return self.row_form(
            pk,
            CancelEventForm,
            submit,
            title=lambda event: f"Cancel {event.name}",
            columns=lambda _: ["reason"],
        )
