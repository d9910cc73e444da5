"""Orders (partners see their own; finance and admins all) with the refund actions (the whole
order, or some tickets), and the ledger for finance. A ticket already used at a gate may be
refunded here, with a warning naming its entry."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask_appbuilder import action, expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext, lazy_gettext

from app.extensions import db
from app.i18n import N_
from app.models import LedgerTransaction, Order, format_money
from app.services import refunds
from app.services.payments import gateway
from app.views.base import ScopedModelView, current_user
from app.views.forms import RefundTicketsForm


class OrderView(ScopedModelView):
    datamodel = SQLAInterface(Order)
    list_title = lazy_gettext("Orders")
    base_permissions = ["can_list", "can_show", "can_refund_tickets", "can_export_csv"]
    list_columns = ["id", "event", "customer", "status", "total", "created_at", "paid_at"]
    show_columns = [*list_columns, "cancel_reason", "ticket_summary", "payment_summary"]
    search_columns = ["event", "status", "created_at"]
    order_columns = ["id", "status", "created_at", "paid_at"]
    base_order = ("created_at", "desc")
    label_columns = {
        "ticket_summary": lazy_gettext("Tickets"),
        "payment_summary": lazy_gettext("Payments"),
    }

    @action(
        "refund",
        N_("Refund"),
        lazy_gettext("Refund the selected orders in full? Tickets are revoked."),
        "fa-undo",
    )
    def refund(self, items: Any) -> Any:
        def refund_order(order: Order) -> None:
            used = refunds.used_tickets(db.session, order)
            refunds.refund_order(db.session, gateway(), order.id, current_user())
            _warn_used(f"Order {order.id} refunded", used)

        self.run_each(items, refund_order, N_("%(count)s order(s) refunded."))
        return redirect(self.get_redirect())

    @action("refund_tickets", N_("Refund tickets"), None, "fa-ticket", multiple=False)
    def refund_tickets_action(self, item: Order) -> Any:
        return redirect(url_for(".refund_tickets", pk=item.id))

    @expose("/refund_tickets/<int:pk>", methods=["GET", "POST"])
    @has_access
    def refund_tickets(self, pk: int) -> Any:
        def choices(order: Order, form: RefundTicketsForm) -> None:
            used = {u.ticket_id: u for u in refunds.used_tickets(db.session, order)}
            form.tickets.choices = [
                (
                    t.id,
                    f"{t.seat_label}, {format_money(t.price_cents, t.currency)} (ticket {t.id})"
                    + (f", USED: {used[t.id].describe()}" if t.id in used else ""),
                )
                for t in order.live_tickets
            ]
            if request.method == "GET":
                _warn_used("Before refunding", list(used.values()))

        def submit(order: Order, form: RefundTicketsForm) -> Any:
            chosen = [t for t in order.live_tickets if t.id in set(form.tickets.data)]
            used = refunds.used_tickets(db.session, order, chosen)
            refunds.refund_tickets(
                db.session, gateway(), order.id, form.tickets.data, current_user()
            )
            flash(
                gettext(
                    "%(count)s ticket(s) of order %(id)s refunded.",
                    count=len(form.tickets.data),
                    id=order.id,
                ),
                "success",
            )
            _warn_used(f"Order {order.id}", used)
            return redirect(url_for(".show", pk=order.id))

        return self.row_form(
            pk,
            RefundTicketsForm,
            submit,
            title=lambda order: f"Refund tickets of order {order.id} ({order.event})",
            columns=lambda _: ["tickets"],
            prepare=choices,
        )


def _warn_used(context: str, used: list[refunds.UsedTicket]) -> None:
    """A warning naming tickets used at a gate that a refund takes (or would take) back."""
    if used:
        flash(
            gettext(
                "%(context)s: already used at the gate: %(tickets)s. The holder may be inside: a "
                "refunded used ticket's seat is withdrawn from sale (unblock the spot to sell it "
                "again).",
                context=context,
                tickets="; ".join(u.describe() for u in used),
            ),
            "warning",
        )


class LedgerTransactionView(ScopedModelView):
    """Finance's view of the ledger (read-only: corrections are reversing transactions)."""

    datamodel = SQLAInterface(LedgerTransaction)
    list_title = lazy_gettext("Ledger")
    base_permissions = ["can_list", "can_show", "can_export_csv"]
    list_columns = ["id", "created_at", "kind", "cause_key", "memo", "summary"]
    show_columns = list_columns
    search_columns = ["kind", "cause_key", "created_at"]
    base_order = ("id", "desc")
    label_columns = {"summary": lazy_gettext("Entries")}
