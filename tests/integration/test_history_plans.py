"""A customer's tickets, a gate's manifest and the reconcile task's sweep read their own rows,
however many other events have sold: with 200 events' 20,000 tickets behind them, none of
their statements reads the whole ticket, spot, order or payment table in the plan PostgreSQL
keeps for it (tests/support/plans.py). Before, the ticket list's OR (owned, or bought and not
handed on) read every ticket, the manifest joined every event's spots, and the sweep, each
minute, read every payment twice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import text

from app.extensions import db
from app.models.base import utcnow
from app.services import settlement
from app.services.payments import gateway
from app.services.purchase import reconcile
from tests.support.builders import make_event, make_partner
from tests.support.gate import device, open_event
from tests.support.plans import analyze, generic_plans, statements_run, whole_table_reads
from tests.support.shop import buy, sign_up

EVENTS, PER_EVENT = 200, 100
TABLES = ("ticket", "event_spot", "order", "hold", "payment")


def _columns(table: str) -> list[str]:
    return list(
        db.session.scalars(
            text(
                "SELECT quote_ident(column_name) FROM information_schema.columns "
                "WHERE table_name = :table AND column_name <> 'id' ORDER BY ordinal_position"
            ),
            {"table": table},
        )
    )


@pytest.fixture
def history(app: Any) -> None:
    """200 other events, each with 100 seats sold to 2,000 customers: an order, a payment and
    a hold a seat."""
    first = make_event(make_partner("Estádio"))
    db.session.commit()
    values = {"first": first.id, "events": EVENTS, "seats": PER_EVENT, "now": utcnow()}
    values["gateway"] = gateway().name
    events = ", ".join(_columns("event"))
    sections = _columns("event_section")
    picked = ", ".join("event.id" if c == "event_id" else f"section.{c}" for c in sections)
    for statement in (
        f"INSERT INTO event ({events}) SELECT {events} FROM event, "
        "generate_series(2, :events) WHERE id = :first",
        f"INSERT INTO event_section ({', '.join(sections)}) SELECT {picked} "
        "FROM event_section section, event WHERE section.event_id = :first AND event.id > :first",
        "INSERT INTO customer (name, email, created_at) SELECT 'Fan ' || n, "
        "'fan' || n || '@example.com', :now FROM generate_series(1, 2000) n",
        "INSERT INTO event_spot (section_id, event_id, label, position, status) SELECT "
        "section.id, section.event_id, 'S' || n, n, 'sold' FROM event_section section, "
        "generate_series(1, :seats) n WHERE section.event_id >= :first",
        'INSERT INTO "order" (customer_id, event_id, status, total_cents, currency, created_at, '
        "paid_at) SELECT (SELECT min(id) FROM customer) + spot.id % 2000, spot.event_id, "
        "'paid', 10000, 'BRL', :now, :now FROM event_spot spot WHERE spot.event_id >= :first",
        "INSERT INTO ticket (order_id, event_id, section_id, spot_id, price_cents, currency, "
        "status, issued_at) SELECT paid.id, spot.event_id, spot.section_id, spot.id, 10000, "
        "'BRL', 'valid', :now FROM (SELECT id, event_id, row_number() OVER (PARTITION BY "
        'event_id ORDER BY id) nth FROM "order" WHERE event_id >= :first) paid JOIN (SELECT '
        "id, event_id, section_id, row_number() OVER (PARTITION BY event_id ORDER BY id) nth "
        "FROM event_spot WHERE event_id >= :first) spot USING (event_id, nth)",
        "INSERT INTO payment (order_id, idempotency_key, status, amount_cents, currency, "
        "fee_cents, net_cents, gateway, created_at, request_fingerprint, captured_at) SELECT id, "
        "'key-' || id, 'captured', 10000, 'BRL', 1100, 8900, :gateway, :now, 'print', :now "
        'FROM "order" WHERE event_id >= :first',
        "INSERT INTO hold (customer_id, event_id, status, created_at, expires_at) SELECT "
        "customer_id, event_id, 'converted', :now, :now + interval '10 minutes' "
        'FROM "order" WHERE event_id >= :first',
    ):
        db.session.execute(text(statement), values)
    db.session.commit()
    assert db.session.scalar(text("SELECT count(*) FROM ticket")) >= EVENTS * PER_EVENT
    for table in TABLES:
        analyze(table)


@pytest.mark.usefixtures("history")
def test_a_customers_tickets_and_a_gates_manifest_read_only_their_own_rows(client):
    partner = make_partner("Aurora")
    event = open_event(partner)
    ana = sign_up(client)
    paid = buy(client, event, buyer=ana)
    gate = device(partner, event)
    with statements_run() as seen:
        mine = client.get("/api/v1/tickets/", headers=ana)
        manifest = client.get(f"/api/v1/checkin/events/{event.id}/manifest", headers=gate)
    assert mine.status_code == 200 and manifest.status_code == 200, manifest.get_json()
    assert sorted(t["id"] for t in mine.get_json()["result"]) == sorted(
        t["id"] for t in paid["tickets"]
    )
    whole = whole_table_reads(generic_plans(seen), TABLES)
    assert not whole, "\n".join(whole)


@pytest.mark.usefixtures("history")
def test_the_reconcile_sweep_reads_only_pending_payments_and_cancelled_orders(app):
    with statements_run() as seen:
        done = reconcile.reconcile_payments(db.session, gateway(), utcnow())
    assert done == {"finished": 0, "refunds_retried": 0, "pending_refunds_finished": 0}
    whole = whole_table_reads(generic_plans(seen), TABLES)
    assert not whole, "\n".join(whole)


@pytest.mark.usefixtures("history")
def test_the_settlement_run_reads_only_the_gateways_captures_of_its_day(app):
    acquirer, now = gateway(), utcnow()
    yesterday = now.date() - dt.timedelta(days=1)
    with statements_run() as seen:
        assert settlement.due_days(db.session, acquirer.name, now.date()) == [yesterday]
        settlement.reconcile_day(db.session, acquirer, yesterday, now)
    whole = whole_table_reads(generic_plans(seen), TABLES)
    assert not whole, "\n".join(whole)
