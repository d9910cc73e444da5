"""Settlements with their lines and mismatches (finance), and payouts with their statements:
finance sees every payout, approves it and marks it paid; a partner reads its own."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, url_for
from flask_appbuilder import ModelView, action, expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext, lazy_gettext

from app.extensions import db
from app.i18n import N_
from app.models import Payout, PayoutItem, Settlement, SettlementLine, SettlementMismatch
from app.models.base import utcnow
from app.services import payouts
from app.views.base import CheckedListMixin, ScopedModelView, current_user
from app.views.forms import PayoutPaidForm


class SettlementLineView(CheckedListMixin, ModelView):
    datamodel = SQLAInterface(SettlementLine)
    list_title = lazy_gettext("Settlement lines")
    base_permissions = ["can_list", "can_show"]
    list_columns = ["kind", "line_ref", "charge_ref", "payment_id", "amount", "fee"]
    show_columns = ["settlement", *list_columns]
    search_columns = ["kind", "line_ref", "charge_ref"]
    label_columns = {
        "line_ref": lazy_gettext("Acquirer's id"),
        "charge_ref": lazy_gettext("Charge"),
        "payment_id": lazy_gettext("Payment"),
    }


class SettlementMismatchView(CheckedListMixin, ModelView):
    datamodel = SQLAInterface(SettlementMismatch)
    list_title = lazy_gettext("Settlement mismatches")
    base_permissions = ["can_list", "can_show"]
    list_columns = [
        "settlement", "kind", "line_kind", "reference", "expected", "reported", "detail",
    ]  # fmt: skip
    show_columns = [*list_columns, "payment_id", "created_at"]
    search_columns = ["kind", "line_kind", "reference", "settlement"]
    base_order = ("id", "desc")
    label_columns = {
        "line_kind": lazy_gettext("Line"),
        "expected": lazy_gettext("Ours"),
        "reported": lazy_gettext("Acquirer's"),
    }


class SettlementView(CheckedListMixin, ModelView):
    datamodel = SQLAInterface(Settlement)
    list_title = lazy_gettext("Settlements")
    base_permissions = ["can_list", "can_show"]
    list_columns = [
        "day", "gateway", "currency", "captured", "refunded", "charged_back", "fees", "net",
        "line_count", "mismatch_count",
    ]  # fmt: skip
    show_columns = [*list_columns, "ledger_transaction", "created_at"]
    search_columns = ["day", "gateway", "currency"]
    order_columns = ["day", "gateway", "currency"]
    base_order = ("day", "desc")
    label_columns = {
        "fees": lazy_gettext("Acquirer's fee"),
        "line_count": lazy_gettext("Lines"),
        "mismatch_count": lazy_gettext("Mismatches"),
        "ledger_transaction": lazy_gettext("Posting"),
    }
    related_views = [SettlementMismatchView, SettlementLineView]


class PayoutItemView(ScopedModelView):
    """A payout's statement: the ledger transactions it covers."""

    datamodel = SQLAInterface(PayoutItem)
    list_title = lazy_gettext("Payout statement")
    base_permissions = ["can_list", "can_show", "can_export_csv"]
    list_columns = ["payout", "posted_at", "kind", "memo", "amount"]
    show_columns = list_columns
    search_columns = ["payout"]
    label_columns = {
        "posted_at": lazy_gettext("Posted"),
        "memo": lazy_gettext("Transaction"),
        "amount": lazy_gettext("Partner's share"),
    }


class PayoutView(ScopedModelView):
    datamodel = SQLAInterface(Payout)
    list_title = lazy_gettext("Payouts")
    base_permissions = ["can_list", "can_show", "can_mark_paid", "can_export_csv"]
    list_columns = ["id", "partner", "amount", "status", "created_at", "paid_at", "bank_reference"]
    show_columns = [*list_columns, "approved_at", "approved_by", "paid_by"]
    search_columns = ["partner", "status", "currency", "created_at"]
    order_columns = ["id", "status", "created_at", "paid_at"]
    base_order = ("id", "desc")
    related_views = [PayoutItemView]

    @action("approve", N_("Approve"), lazy_gettext("Approve the selected payouts?"), "fa-check")
    def approve(self, items: Any) -> Any:
        self.run_each(
            items,
            lambda p: payouts.approve_payout(db.session, p.id, current_user(), utcnow()),
            N_("%(count)s payout(s) approved."),
        )
        return redirect(self.get_redirect())

    @action(
        "cancel_payout",
        N_("Cancel"),
        lazy_gettext(
            "Cancel the selected unpaid payouts? Their transactions go to the next payout run."
        ),
        "fa-times",
    )
    def cancel_payout(self, items: Any) -> Any:
        self.run_each(
            items,
            lambda p: payouts.cancel_payout(db.session, p.id, current_user()),
            N_("%(count)s payout(s) cancelled."),
        )
        return redirect(self.get_redirect())

    @action("mark_paid", N_("Mark paid"), None, "fa-bank", multiple=False)
    def mark_paid_action(self, item: Payout) -> Any:
        return redirect(url_for(".mark_paid", pk=item.id))

    @expose("/paid/<int:pk>", methods=["GET", "POST"])
    @has_access
    def mark_paid(self, pk: int) -> Any:
        def submit(payout: Payout, form: PayoutPaidForm) -> Any:
            payouts.mark_payout_paid(
                db.session, payout.id, form.bank_reference.data, current_user(), utcnow()
            )
            flash(gettext("Payout %(id)s is paid.", id=payout.id), "success")
            return redirect(url_for(".show", pk=payout.id))

        return self.row_form(
            pk,
            PayoutPaidForm,
            submit,
            title=lambda payout: f"Mark payout {payout.id} ({payout.amount}) paid",
            columns=lambda _: ["bank_reference"],
        )
