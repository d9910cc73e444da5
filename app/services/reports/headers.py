"""A report's header row in the language of whoever asked for it (kept in the report's params
when it is requested: the task that writes the file has no request). The columns' keys stay
those of contents.py; a key without a label here is written as it is."""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import lazy_gettext

HEADERS = {
    "line": lazy_gettext("Line"),
    "event_id": lazy_gettext("Event id"),
    "event": lazy_gettext("Event"),
    "partner_id": lazy_gettext("Partner id"),
    "partner": lazy_gettext("Partner"),
    "currency": lazy_gettext("Currency"),
    "order_id": lazy_gettext("Order id"),
    "paid_at": lazy_gettext("Paid at (UTC)"),
    "ticket_types": lazy_gettext("Ticket types"),
    "tickets": lazy_gettext("Tickets"),
    "tickets_refunded": lazy_gettext("Tickets refunded"),
    "gross": lazy_gettext("Gross"),
    "discounts": lazy_gettext("Discounts"),
    "fees": lazy_gettext("Fees"),
    "refunds": lazy_gettext("Refunds"),
    "chargebacks": lazy_gettext("Chargebacks"),
    "net": lazy_gettext("Net"),
    "posted_at": lazy_gettext("Posted at (UTC)"),
    "transaction_id": lazy_gettext("Transaction id"),
    "kind": lazy_gettext("Kind"),
    "description": lazy_gettext("Description"),
    "sales": lazy_gettext("Sales"),
    "fees_returned": lazy_gettext("Fees returned"),
    "payouts": lazy_gettext("Payouts"),
    "change": lazy_gettext("Change"),
    "balance": lazy_gettext("Balance"),
    "day": lazy_gettext("Day (UTC)"),
    "fees_charged": lazy_gettext("Fees charged"),
    "fees_kept": lazy_gettext("Fees kept"),
    "gateway_fees": lazy_gettext("Gateway fees"),
    "payout_id": lazy_gettext("Payout id"),
    "amount": lazy_gettext("Amount"),
    "reference": lazy_gettext("Reference"),
    "bank_reference": lazy_gettext("Bank reference"),
    "approved_at": lazy_gettext("Approved at (UTC)"),
}


def header_row(columns: Iterable[str]) -> list[str]:
    """The columns' headers in the current language."""
    return [str(HEADERS.get(column, column)) for column in columns]
