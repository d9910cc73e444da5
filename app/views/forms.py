"""Forms for the dashboard's own routes (FAB builds the CRUD forms from the models)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget, BS3TextFieldWidget, Select2Widget
from flask_appbuilder.forms import DynamicForm
from flask_babel import lazy_gettext
from wtforms import (
    DateField,
    DateTimeLocalField,
    DecimalField,
    Field,
    Form,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    StopValidation,
)
from wtforms.widgets import CheckboxInput, ListWidget

from app.models import SectionKind, local_time

SECTION_KIND_CHOICES = [
    (SectionKind.SEATED.value, lazy_gettext("Seated (numbered seats)")),
    (SectionKind.GENERAL.value, lazy_gettext("General admission")),
]


def reserve_field(*, required: bool) -> DecimalField:
    """A partner's payout reserve (optional in the partner form: none, 0 %, when left empty)."""
    message = lazy_gettext("Give the reserve as a percentage, 0 to 100.")
    return DecimalField(
        lazy_gettext("Payout reserve (%)"),
        places=2,
        validators=[InputRequired(message=message) if required else Optional()],
        description=(
            lazy_gettext(
                "Held back from payouts for refunds and chargebacks: this percentage of the "
                "partner's settled net of the last 30 days, 0 to 100."
            )
        ),
        widget=BS3TextFieldWidget(),
    )


def price_field() -> DecimalField:
    return DecimalField(
        lazy_gettext("Price"),
        places=2,
        validators=[InputRequired(), NumberRange(min=0)],
        description=lazy_gettext("Per ticket, in the event's currency (for example 150.00)."),
        widget=BS3TextFieldWidget(),
    )


def kind_field() -> SelectField:
    return SelectField(
        lazy_gettext("Kind"),
        choices=SECTION_KIND_CHOICES,
        validators=[DataRequired()],
        widget=Select2Widget(),
    )


def position_field() -> IntegerField:
    return IntegerField(
        lazy_gettext("Position"),
        validators=[Optional(), NumberRange(min=0)],
        default=0,
        description=lazy_gettext("Order on the event page (lower first)."),
        widget=BS3TextFieldWidget(),
    )


DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]


def datetime_field(label: Any, *, required: bool = False) -> DateTimeLocalField:
    """The browser's own date-and-time picker (FAB's datepicker drops the time)."""
    return DateTimeLocalField(
        label,
        format=DATETIME_FORMATS,
        validators=[DataRequired() if required else Optional()],
        render_kw={"class": "form-control"},
    )


def timezone_field() -> SelectField:
    """The venue's time zone: Brazil's first, then every IANA zone."""
    return SelectField(
        lazy_gettext("Time zone"),
        choices=local_time.all_timezones(),
        default=local_time.DEFAULT_TIMEZONE,
        validators=[DataRequired()],
        render_kw={"class": "form-control"},
    )


def currency_field() -> StringField:
    return StringField(
        lazy_gettext("Currency"),
        validators=[
            Optional(),
            Regexp(r"^[A-Za-z]{3}$", message=lazy_gettext("A three-letter ISO code.")),
        ],
        description=lazy_gettext("ISO 4217 code; empty means the platform default (BRL)."),
        widget=BS3TextFieldWidget(),
    )


class CancelEventForm(DynamicForm):
    reason = TextAreaField(
        lazy_gettext("Reason"),
        validators=[DataRequired(), Length(max=2000)],
        description=lazy_gettext("Shown to customers. Cancelled events stop selling at once."),
        widget=BS3TextAreaFieldWidget(),
    )


ROW = [Optional(), Regexp(r"^[A-Za-z]$", message=lazy_gettext("A single letter from A to Z."))]


class GenerateSpotsForm(DynamicForm):
    first_row = StringField(lazy_gettext("First row"), validators=ROW, widget=BS3TextFieldWidget())
    last_row = StringField(lazy_gettext("Last row"), validators=ROW, widget=BS3TextFieldWidget())
    seats_per_row = IntegerField(
        lazy_gettext("Seats per row"),
        validators=[Optional(), NumberRange(min=1, max=500)],
        widget=BS3TextFieldWidget(),
    )
    quantity = IntegerField(
        lazy_gettext("Places (general admission)"),
        validators=[Optional(), NumberRange(min=1, max=50_000)],
        widget=BS3TextFieldWidget(),
    )
    prefix = StringField(
        lazy_gettext("Label prefix"),
        validators=[Optional(), Length(max=10)],
        description=lazy_gettext("Optional, e.g. 'N' gives seats NA-1, NA-2 ..."),
        widget=BS3TextFieldWidget(),
    )


class PayoutPaidForm(DynamicForm):
    bank_reference = StringField(
        lazy_gettext("Bank reference"),
        validators=[
            DataRequired(message=lazy_gettext("Give the bank transfer's reference.")),
            Length(max=100),
        ],
        description=lazy_gettext(
            "The reference of the transfer to the partner, as the bank shows it."
        ),
        widget=BS3TextFieldWidget(),
    )


def at_least_one(message: str) -> Callable[[Form, Field], None]:
    """DataRequired for a group of checkboxes: it would mark each box required in the browser,
    asking for all of them."""

    def check(_form: Form, field: Field) -> None:
        if not field.data:
            raise StopValidation(message)

    return check


class PartnerReserveForm(DynamicForm):
    reserve_percent = reserve_field(required=True)


class RefundTicketsForm(DynamicForm):
    """Choices: the order's valid tickets (set per order)."""

    tickets = SelectMultipleField(
        lazy_gettext("Tickets"),
        coerce=int,
        validators=[at_least_one("Tick at least one ticket to refund.")],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        description=lazy_gettext(
            "Each ticket's price goes back to the card and the ticket no longer admits "
            "anyone; its seat returns to sale unless the event is cancelled or the "
            "ticket was used at the gate."
        ),
    )


REPORT_FORMAT_CHOICES = [("csv", "CSV"), ("xlsx", "Excel (XLSX)")]


def date_field(label: Any, description: Any) -> DateField:
    return DateField(
        label,
        validators=[Optional()],
        description=description,
        render_kw={"class": "form-control"},
    )


class ReportRequestForm(DynamicForm):
    # The kinds offered depend on the user; the service explains a refused one at the field.
    kind = SelectField(
        lazy_gettext("Report"), choices=[], validate_choice=False, widget=Select2Widget()
    )
    format = SelectField(
        lazy_gettext("Format"),
        choices=REPORT_FORMAT_CHOICES,
        validators=[DataRequired()],
        widget=Select2Widget(),
    )
    start = date_field(
        lazy_gettext("First day"),
        lazy_gettext("UTC. Needed for statements and revenue; optional for sales."),
    )
    end = date_field(lazy_gettext("Last day"), lazy_gettext("UTC, included."))
    partner = SelectField(
        lazy_gettext("Partner"),
        choices=[],
        description=lazy_gettext(
            "Empty: every partner (platform revenue always covers every partner)."
        ),
        widget=Select2Widget(),
    )
