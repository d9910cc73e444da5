"""Partner dashboard and REST API for promo codes (scoped to the user's partner): create and edit
codes, see their uses in force, generate a batch of single-use codes and export it as CSV."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, redirect, url_for
from flask_appbuilder import action, expose, has_access
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext, lazy_gettext
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app.extensions import db
from app.i18n import N_
from app.models import PromoCode
from app.models.promo import MAX_BATCH, PROMO_KIND_LABELS, PromoKind
from app.services import promos
from app.views.base import ScopedModelRestApi, ScopedModelView, current_user
from app.views.forms import datetime_field, money_field

PROMO_TIMES = ("valid_from", "valid_until")


def promo_kind_field() -> SelectField:
    return SelectField(
        lazy_gettext("Discount"),
        choices=[(kind.value, lazy_gettext(label)) for kind, label in PROMO_KIND_LABELS.items()],
        default=PromoKind.PERCENT.value,
        validators=[DataRequired()],
        render_kw={"class": "form-control"},
    )


class BatchForm(DynamicForm):
    prefix = StringField(
        lazy_gettext("Prefix"),
        validators=[DataRequired(), Length(max=20)],
        description=lazy_gettext("Each code is the prefix, a dash and 8 random characters."),
        widget=BS3TextFieldWidget(),
    )
    count = IntegerField(
        lazy_gettext("Codes"),
        validators=[DataRequired(), NumberRange(min=1, max=MAX_BATCH)],
        widget=BS3TextFieldWidget(),
    )


class PromoCodeRules:
    def on_add(self, item: PromoCode) -> None:
        item.times_from_local()
        promos.prepare_code(db.session, item, current_user())

    def on_update(self, item: PromoCode) -> None:
        item.times_from_local()
        promos.check_code(db.session, item)

    def on_delete(self, item: PromoCode) -> None:
        promos.check_deletable(db.session, item)


class ApiPromoCodeRules(PromoCodeRules):
    """The API's times carry an offset (or are UTC): nothing to convert."""

    def on_add(self, item: PromoCode) -> None:
        promos.prepare_code(db.session, item, current_user())

    def on_update(self, item: PromoCode) -> None:
        promos.check_code(db.session, item)


PROMO_FORM_COLUMNS = [
    "partner",
    "code",
    "event",
    "section",
    "ticket_type",
    "kind",
    "value_amount",
    "valid_from",
    "valid_until",
    "max_uses",
    "max_uses_per_customer",
    "active",
]


class PromoCodeView(PromoCodeRules, ScopedModelView):
    datamodel = SQLAInterface(PromoCode)
    list_title = lazy_gettext("Promo codes")
    show_title = lazy_gettext("Promo code")
    add_title = lazy_gettext("Add a promo code")
    edit_title = lazy_gettext("Edit a promo code")
    list_columns = ["code", "partner", "event", "section", "ticket_type", "value_text",
                    "uses_text", "max_uses_per_customer", "active", "batch"]  # fmt: skip
    show_columns = [*list_columns, "valid_from", "valid_until", "created_at"]
    add_columns = PROMO_FORM_COLUMNS
    edit_columns = PROMO_FORM_COLUMNS[1:]
    partner_only_hidden = ("partner",)
    search_columns = ["code", "event", "batch", "active", "partner"]
    order_columns = ["code", "created_at"]
    base_order = ("created_at", "desc")
    label_columns = {
        "code": lazy_gettext("Code"),
        "partner": lazy_gettext("Partner"),
        "event": lazy_gettext("Event"),
        "section": lazy_gettext("Section"),
        "ticket_type": lazy_gettext("Ticket type"),
        "kind": lazy_gettext("Discount"),
        "value_amount": lazy_gettext("Value"),
        "value_text": lazy_gettext("Discount"),
        "valid_from": lazy_gettext("Valid from"),
        "valid_until": lazy_gettext("Valid until"),
        "max_uses": lazy_gettext("Uses in all"),
        "uses_text": lazy_gettext("Uses (in force / limit)"),
        "max_uses_per_customer": lazy_gettext("Uses per customer"),
        "active": lazy_gettext("Active"),
        "batch": lazy_gettext("Batch"),
        "created_at": lazy_gettext("Created (UTC)"),
    }
    description_columns = {
        "code": lazy_gettext("What buyers type, in any case (stored in capitals)."),
        "event": lazy_gettext("Empty: every event of yours."),
        "section": lazy_gettext(
            "Only tickets of this section (a hidden section is sold only with its code)."
        ),
        "ticket_type": lazy_gettext(
            "Only tickets of this type (a hidden type is sold only with its code)."
        ),
        "value_amount": lazy_gettext(
            "Percent off: the percent (1 to 99). Amount off or fixed price: the amount per "
            "ticket (for example 25,00). A code never makes a ticket free."
        ),
        "valid_from": lazy_gettext("The event's local time. Empty: from now."),
        "valid_until": lazy_gettext("The event's local time. Empty: until the sales close."),
        "max_uses": lazy_gettext(
            "One use per ticket; a hold that expires or a refund gives it back. Empty: no limit."
        ),
        "max_uses_per_customer": lazy_gettext("Empty: no limit."),
    }
    add_form_extra_fields = {
        "kind": promo_kind_field(),
        "value_amount": money_field(
            lazy_gettext("Value"), description=description_columns["value_amount"]
        ),
        "valid_from": datetime_field(lazy_gettext("Valid from")),
        "valid_until": datetime_field(lazy_gettext("Valid until")),
        "max_uses": IntegerField(
            lazy_gettext("Uses in all"),
            validators=[Optional(), NumberRange(min=0)],
            description=description_columns["max_uses"],
            widget=BS3TextFieldWidget(),
        ),
        "max_uses_per_customer": IntegerField(
            lazy_gettext("Uses per customer"),
            validators=[Optional(), NumberRange(min=1)],
            description=description_columns["max_uses_per_customer"],
            widget=BS3TextFieldWidget(),
        ),
        "active": BooleanField(lazy_gettext("Active"), default=True),
    }
    edit_form_extra_fields = add_form_extra_fields
    error_fields = {"value": "value_amount", "ticket_type": "ticket_type"}

    def prefill_form(self, form: Any, pk: Any) -> None:
        item = self.datamodel.get(pk, self._base_filters)
        for field in PROMO_TIMES:
            if field in form:
                form[field].data = item.local_naive(field)

    @action("batch", N_("Generate single-use codes"), None, "fa-files-o", multiple=False)
    def batch_action(self, item: PromoCode) -> Any:
        return redirect(url_for(".batch", pk=item.id))

    @expose("/batch/<int:pk>", methods=["GET", "POST"])
    @has_access
    def batch(self, pk: int) -> Any:
        """Single-use copies of a code, answered as the CSV of the new codes."""

        def submit(template: PromoCode, form: BatchForm) -> Any:
            made = promos.generate_batch(
                db.session, current_user(), template.id, form.count.data, form.prefix.data
            )
            return _csv(promos.codes_csv(made), made[0].batch or "codes")

        return self.row_form(
            pk,
            BatchForm,
            submit,
            title=lambda code: gettext("Single-use copies of %(code)s", code=code.code),
            columns=lambda _code: ["prefix", "count"],
        )

    @action("export_codes", N_("Export codes (CSV)"), None, "fa-download")
    def export_codes(self, items: Any) -> Any:
        """The selected codes as the CSV handed to buyers (a batch: search by it first)."""
        items = items if isinstance(items, list) else [items]
        return _csv(promos.codes_csv(items), "promo_codes")

    @expose("/batch.csv/<string:batch>")
    @has_access
    def batch_csv(self, batch: str) -> Any:
        """A batch's codes the user may see, as CSV (404 when none)."""
        codes = promos.batch_codes(db.session, current_user(), batch)
        if not codes:
            abort(404)
        return _csv(promos.codes_csv(codes), codes[0].batch or "codes")


def _csv(content: str, name: str) -> Response:
    return Response(
        content,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


class PromoCodeApi(ApiPromoCodeRules, ScopedModelRestApi):
    resource_name = "promo-codes"
    datamodel = SQLAInterface(PromoCode)
    list_columns = [
        "id", "partner.id", "event.id", "section.id", "ticket_type.id", "code", "kind", "value",
        "valid_from", "valid_until", "max_uses", "max_uses_per_customer", "active", "batch",
    ]  # fmt: skip
    show_columns = list_columns
    add_columns = [
        "event", "section", "ticket_type", "code", "kind", "value", "valid_from", "valid_until",
        "max_uses", "max_uses_per_customer", "active",
    ]  # fmt: skip
    edit_columns = add_columns
    search_columns = ["code", "event", "batch", "active"]
    order_columns = ["code", "created_at"]
