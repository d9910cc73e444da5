"""Admin dashboard: partners (approval, suspension, fees) and customers."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask_appbuilder import ModelView, action, expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext, lazy_gettext
from wtforms import BooleanField

from app.extensions import db
from app.i18n import N_
from app.models import Customer, Partner
from app.models.money import format_amount, format_number
from app.services import partners as partner_service
from app.views.base import CheckedListMixin, ScopedModelView, current_user
from app.views.forms import PartnerReserveForm, money_field, percent_field, reserve_field


class PartnerView(ScopedModelView):
    datamodel = SQLAInterface(Partner)
    list_title = lazy_gettext("Partners")
    list_columns = [
        "name",
        "status",
        "fee_percent",
        "fee_fixed_cents",
        "reserve_percent",
        "contact_email",
        "created_at",
    ]
    show_columns = [*list_columns, "daily_summary", "approved_at", "suspended_at"]
    add_columns = ["name", "contact_email", "fee_percent", "fee_fixed_amount", "reserve_percent"]
    edit_columns = [*add_columns, "daily_summary"]
    search_columns = ["name", "status", "contact_email"]
    label_columns = {
        "fee_percent": lazy_gettext("Fee (%)"),
        "fee_fixed_cents": lazy_gettext("Fee per ticket"),
        "fee_fixed_amount": lazy_gettext("Fee per ticket"),
        "reserve_percent": lazy_gettext("Payout reserve (%)"),
        "daily_summary": lazy_gettext("Daily sales e-mail"),
    }
    # Figures read as the reader writes them: "7,5", "0,50" in pt_BR.
    formatters_columns = {
        "fee_percent": format_number,
        "fee_fixed_cents": format_amount,
        "reserve_percent": format_number,
    }
    add_form_extra_fields = {
        "fee_percent": percent_field(
            lazy_gettext("Fee (%)"),
            description=lazy_gettext(
                "Platform fee as a percentage of the gross, 0 to 100 (for example 7,5)."
            ),
        ),
        "fee_fixed_amount": money_field(
            lazy_gettext("Fee per ticket"),
            description=lazy_gettext(
                "Fixed platform fee per ticket, in the event's currency (for example 0,50; 0"
                " for none)."
            ),
        ),
        "reserve_percent": reserve_field(required=False),
    }
    edit_form_extra_fields = {
        **add_form_extra_fields,
        # FAB makes a non-null column's field required, and a required checkbox cannot be
        # left unticked: the summary could not be turned off here.
        "daily_summary": BooleanField(
            lazy_gettext("Daily sales e-mail"),
            description=lazy_gettext(
                "Yesterday's sales e-mailed to the partner every morning (it can turn them off"
                " from the e-mail)."
            ),
        ),
    }
    error_fields = {"fee_fixed_cents": "fee_fixed_amount"}

    def on_add(self, item: Partner) -> None:
        item.validate_fees()
        item.validate_reserve()

    def on_update(self, item: Partner) -> None:
        item.validate_fees()
        item.validate_reserve()

    @action("reserve", N_("Payout reserve"), None, "fa-shield", multiple=False)
    def reserve_action(self, item: Partner) -> Any:
        return redirect(url_for(".reserve", pk=item.id))

    @expose("/reserve/<int:pk>", methods=["GET", "POST"])
    @has_access
    def reserve(self, pk: int) -> Any:
        """Finance sets the reserve here (the partner form, fees included, is the admins')."""

        def prepare(partner: Partner, form: PartnerReserveForm) -> None:
            if request.method == "GET":
                form.reserve_percent.data = partner.reserve_percent

        def submit(partner: Partner, form: PartnerReserveForm) -> Any:
            partner_service.set_reserve(
                db.session, partner.id, form.reserve_percent.data, current_user()
            )
            flash(
                gettext(
                    "%(name)s's payout reserve is %(percent)s %%.",
                    name=partner.name,
                    percent=form.reserve_percent.data,
                ),
                "success",
            )
            return redirect(url_for(".show", pk=partner.id))

        return self.row_form(
            pk,
            PartnerReserveForm,
            submit,
            title=lambda partner: f"Payout reserve of {partner.name}",
            columns=lambda _: ["reserve_percent"],
            prepare=prepare,
        )

    def on_delete(self, item: Partner) -> None:
        item.check_deletable()

    @action("approve", N_("Approve"), lazy_gettext("Approve the selected partners?"), "fa-check")
    def approve(self, items: Any) -> Any:
        self.run_each(
            items,
            lambda p: partner_service.approve_partner(db.session, p.id, current_user()),
            N_("%(count)s partner(s) approved."),
        )
        return redirect(self.get_redirect())

    @action(
        "suspend",
        N_("Suspend"),
        lazy_gettext("Suspend the selected partners? They stop selling."),
        "fa-ban",
    )
    def suspend(self, items: Any) -> Any:
        self.run_each(
            items,
            lambda p: partner_service.suspend_partner(db.session, p.id, current_user()),
            N_("%(count)s partner(s) suspended."),
        )
        return redirect(self.get_redirect())


class CustomerView(CheckedListMixin, ModelView):
    datamodel = SQLAInterface(Customer)
    list_title = lazy_gettext("Customers")
    list_columns = ["name", "email", "created_at"]
    show_columns = ["name", "email", "email_confirmed_at", "user", "created_at"]
    search_columns = ["name", "email", "created_at"]
    # Until the sign-up's link is followed, mails about the customer's orders wait (held).
    label_columns = {"email_confirmed_at": lazy_gettext("E-mail confirmed")}
    base_permissions = ["can_list", "can_show"]
