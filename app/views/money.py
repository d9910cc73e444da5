"""Orders (partners see their own; finance and admins all) with the refund action, and the
ledger for finance."""

from __future__ import annotations

from typing import Any

from flask import redirect
from flask_appbuilder import action
from flask_appbuilder.models.sqla.interface import SQLAInterface

from app.extensions import db
from app.models import LedgerTransaction, Order
from app.services import refunds
from app.services.payments import gateway
from app.views.base import ScopedModelView, current_user


class OrderView(ScopedModelView):
    datamodel = SQLAInterface(Order)
    list_title = "Orders"
    base_permissions = ["can_list", "can_show"]
    list_columns = ["id", "event", "customer", "status", "total", "created_at", "paid_at"]
    show_columns = [*list_columns, "cancel_reason", "ticket_summary", "payment_summary"]
    search_columns = ["event", "status", "created_at"]
    order_columns = ["id", "status", "created_at", "paid_at"]
    base_order = ("created_at", "desc")
    label_columns = {"ticket_summary": "Tickets", "payment_summary": "Payments"}

    @action(
        "refund", "Refund", "Refund the selected orders in full? Tickets are revoked.", "fa-undo"
    )
    def refund(self, items: Any) -> Any:
        self.run_each(
            items,
            lambda order: refunds.refund_order(db.session, gateway(), order.id, current_user()),
            "{count} order(s) refunded.",
        )
        return redirect(self.get_redirect())


class LedgerTransactionView(ScopedModelView):
    """Finance's view of the ledger (read-only: corrections are reversing transactions)."""

    datamodel = SQLAInterface(LedgerTransaction)
    list_title = "Ledger"
    base_permissions = ["can_list", "can_show"]
    list_columns = ["id", "created_at", "kind", "cause_key", "memo", "summary"]
    show_columns = list_columns
    search_columns = ["kind", "cause_key", "created_at"]
    base_order = ("id", "desc")
    label_columns = {"summary": "Entries"}
