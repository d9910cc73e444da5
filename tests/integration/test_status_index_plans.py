"""Statements that look for rows by a status a partial index is made of (waiting entries, mails
and deliveries still to send) find them through that index also in the plan PostgreSQL keeps
for a prepared statement, planned without the parameters' values: with the status bound, that
plan cannot use the index and reads the whole table, every row the index leaves out. Each test
gives the tables a long history, runs a real operation, and EXPLAINs each statement it ran as
the app sent it (tests/support/plans.py)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from app.extensions import db
from app.models import Event
from app.models.base import utcnow
from app.services.mail import sender as mail_sender
from app.services.webhooks import sender as webhook_sender
from tests.support.builders import make_event, make_partner
from tests.support.plans import (
    analyze,
    generic_plans,
    statements_run,
    whole_table_reads,
)
from tests.support.shop import buy

HISTORY = 20_000
TABLES = ("waitlist_entry", "mail_outbox", "webhook_delivery")
# the partial indexes of deliveries still to send (pending or sending)
UNFINISHED = {"ix_webhook_delivery_due", "ix_webhook_delivery_unfinished"}


@pytest.fixture
def history(on_sale: Event) -> None:
    """Another event's long waiting list, all of it over; mails all sent; and an endpoint of
    the on-sale's partner (subscribed to order.paid) with every delivery delivered."""
    other = make_event(make_partner("Estádio"))
    db.session.commit()
    values = {"event_id": other.id, "partner_id": on_sale.partner_id, "now": utcnow()}
    values["history"] = HISTORY
    for statement in (
        "INSERT INTO customer (name, email, created_at) SELECT 'Fan ' || n, "
        "'fan' || n || '@example.com', :now FROM generate_series(1, 200) n",
        "INSERT INTO waitlist_entry (event_id, customer_id, quantity, status, created_at, "
        "ended_at) SELECT :event_id, customer.id, 1, 'expired', :now, :now "
        "FROM customer, generate_series(1, :history / 200)",
        "INSERT INTO mail_outbox (key, kind, to_address, locale, params, status, attempts, "
        "next_attempt_at, created_at, sent_at) SELECT 'sent-' || n, 'order_paid', "
        "'fan@example.com', 'pt_BR', '{}', 'sent', 1, :now, :now, :now "
        "FROM generate_series(1, :history) n",
        "INSERT INTO webhook_endpoint (partner_id, url, kinds, secret, active, created_at) "
        "VALUES (:partner_id, 'https://partner.example.com/hooks', ARRAY['order.paid'], "
        "'secret', true, :now)",
        "INSERT INTO webhook_delivery (endpoint_id, partner_id, kind, key, payload, status, "
        "attempts, next_attempt_at, created_at, delivered_at) SELECT endpoint.id, "
        ":partner_id, 'order.paid', 'order-' || n, '{}', 'delivered', 1, :now, :now, :now "
        "FROM webhook_endpoint endpoint, generate_series(1, :history) n",
    ):
        db.session.execute(text(statement), values)
    db.session.commit()
    for table in TABLES:
        analyze(table)


def plan_of(plans: list[tuple[str, str]], cte: str) -> str:
    """The plan of the one statement with a CTE named ``cte``."""
    [plan] = [plan for statement, plan in plans if re.search(rf"\b{cte} AS \(", statement)]
    return plan


def readers(plan: str, table: str) -> set[str]:
    """How the plan reads ``table``: the indexes it scans, or "whole table"."""
    lines = plan.splitlines()
    found = set()
    for n, line in enumerate(lines):
        if re.search(rf"Seq Scan on {table}\b", line):
            found.add("whole table")
        elif match := re.search(rf"using (\w+) on {table}\b", line):
            found.add(match.group(1))
        elif re.search(rf"Bitmap Heap Scan on {table}\b", line):
            found.update(re.findall(r"Bitmap Index Scan on (\w+)", "\n".join(lines[n + 1 :])))
    return found


@pytest.mark.usefixtures("history")
def test_a_purchase_reads_no_history_neither_waiting_entries_nor_deliveries(client, on_sale):
    with statements_run() as seen:
        buy(client, on_sale)
    plans = generic_plans(seen)
    assert not whole_table_reads(plans, TABLES)
    # the hold looks for people waiting at its event; the sale for deliveries its endpoint
    # has not finished (order.paid waits behind them)
    hold, sale = plan_of(plans, "locked_customer"), plan_of(plans, "captured")
    assert readers(hold, "waitlist_entry") == {"ix_waitlist_entry_waiting"}
    found = readers(sale, "webhook_delivery")
    assert found and found <= UNFINISHED
    assert db.session.scalar(text("SELECT count(*) FROM webhook_delivery")) == HISTORY + 1


# A row due now in each outbox, beside its history; the sender's claim, and its partial indexes.
DUE_MAIL = (
    "INSERT INTO mail_outbox (key, kind, to_address, locale, params, status, attempts, "
    "next_attempt_at, created_at) VALUES ('due', 'order_paid', 'ana@example.com', 'pt_BR', "
    "'{}', 'pending', 0, :now, :now)"
)
DUE_DELIVERY = (
    "INSERT INTO webhook_delivery (endpoint_id, partner_id, kind, key, payload, status, "
    "attempts, next_attempt_at, created_at) SELECT id, partner_id, 'order.paid', 'due', '{}', "
    "'pending', 0, :now, :now FROM webhook_endpoint"
)


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize(
    ("due", "claim", "table", "indexes"),
    [
        (DUE_MAIL, mail_sender.claim, "mail_outbox", {"ix_mail_outbox_due"}),
        # what is due, and whether an older delivery of its endpoint is unfinished
        (DUE_DELIVERY, webhook_sender.claim, "webhook_delivery", UNFINISHED),
    ],
    ids=["mail", "webhook"],
)
def test_a_senders_claim_reads_only_what_is_still_to_send(app, due, claim, table, indexes):
    db.session.execute(text(due), {"now": utcnow()})
    db.session.commit()
    with statements_run() as seen:
        [claimed] = claim(db.session, 10)
    plans = generic_plans(seen)
    assert not whole_table_reads(plans, TABLES)
    found = readers(plan_of(plans, "taken"), table)
    assert found and found <= indexes
    key = f"SELECT key FROM {table} WHERE id = :id"
    assert db.session.scalar(text(key), {"id": claimed.id}) == "due"
