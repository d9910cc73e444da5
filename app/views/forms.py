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

from app.models import DomainError, SectionKind, TicketKind, local_time
from app.models.money import format_number, parse_decimal
from app.models.ticket_type import KIND_LABELS
from app.models.webhook import KIND_LABELS as WEBHOOK_KIND_LABELS

SECTION_KIND_CHOICES = [
    (SectionKind.SEATED.value, lazy_gettext("Seated (numbered seats)")),
    (SectionKind.GENERAL.value, lazy_gettext("General admission")),
]


class TypedNumberField(DecimalField):
    """A number as people type it, with a comma or a point as the decimal mark ("150,00",
    "150.00", "1.234,56", "1,234.56", "7,5"): the one rule of ``app.models.money.parse_decimal``,
    which names what it could not read at this field. Shown back in the reader's locale."""

    def __init__(self, label: Any, *, example: str, pattern: str, **kwargs: object) -> None:
        kwargs.setdefault("widget", BS3TextFieldWidget())
        kwargs.setdefault("render_kw", {"inputmode": "decimal"})
        super().__init__(label, places=None, **kwargs)  # type: ignore[arg-type]
        self.example = example
        self.pattern = pattern

    def _value(self) -> str:
        if self.raw_data:
            return str(self.raw_data[0])
        return "" if self.data is None else format_number(self.data, pattern=self.pattern)

    def process_formdata(self, valuelist: list[str]) -> None:
        if not valuelist or not str(valuelist[0]).strip():
            self.data = None
            return
        try:
            self.data = parse_decimal(valuelist[0], field=self.name, example=self.example)
        except DomainError as err:
            self.data = None
            raise ValueError(err.message) from None

    def pre_validate(self, form: Form) -> None:
        if self.process_errors:  # unreadable: saying it is also below 0 adds nothing
            raise StopValidation()


def money_field(label: Any, *, required: bool = True, description: Any) -> TypedNumberField:
    """An amount in currency units ("150,00"), never in cents."""
    return TypedNumberField(
        label,
        example="150,00",
        pattern="#,##0.00",
        validators=[InputRequired() if required else Optional(), NumberRange(min=0)],
        description=description,
    )


def percent_field(
    label: Any, *, required: bool = True, message: Any = None, description: Any
) -> TypedNumberField:
    """A percentage, 0 to 100, with a comma or a point ("7,5")."""
    return TypedNumberField(
        label,
        example="7,5",
        pattern="#,##0.##",
        validators=[InputRequired(message=message) if required else Optional()],
        description=description,
    )


def reserve_field(*, required: bool) -> TypedNumberField:
    """A partner's payout reserve (optional in the partner form: none, 0 %, when left empty)."""
    return percent_field(
        lazy_gettext("Payout reserve (%)"),
        required=required,
        message=lazy_gettext("Give the reserve as a percentage, 0 to 100."),
        description=lazy_gettext(
            "Held back from payouts for refunds and chargebacks: this percentage of the"
            " partner's settled net of the last 30 days, 0 to 100 (for example 10 or 7,5)."
        ),
    )


def price_field() -> TypedNumberField:
    return money_field(
        lazy_gettext("Price"),
        description=lazy_gettext(
            "Per ticket, in the event's currency (for example 150,00 or 1.234,56)."
        ),
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


def ticket_kind_field() -> SelectField:
    return SelectField(
        lazy_gettext("Kind"),
        choices=[(kind.value, lazy_gettext(label)) for kind, label in KIND_LABELS.items()],
        default=TicketKind.FULL.value,
        validators=[DataRequired()],
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


class CourtesyForm(DynamicForm):
    email = StringField(
        lazy_gettext("Customer's e-mail"),
        validators=[DataRequired(), Length(max=320)],
        description=lazy_gettext("The customer finds the tickets in their orders."),
        widget=BS3TextFieldWidget(),
    )
    quantity = IntegerField(
        lazy_gettext("Tickets"),
        validators=[DataRequired(), NumberRange(min=1, max=50)],
        widget=BS3TextFieldWidget(),
    )


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


def webhook_kinds_field() -> SelectMultipleField:
    """The kinds of event an endpoint hears of, as checkboxes (in WebhookKind's order)."""
    return SelectMultipleField(
        lazy_gettext("Events sent"),
        choices=[(kind.value, lazy_gettext(label)) for kind, label in WEBHOOK_KIND_LABELS.items()],
        validators=[at_least_one(lazy_gettext("Tick at least one kind of event."))],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )
