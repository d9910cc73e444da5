"""A stadium-sized event (100,000 tickets, more than PostgreSQL's 65,535 bound parameters per
statement) is armed for its gates, cancelled and refunded, and reported on, each in full: no
step loads its tickets with one bound parameter per ticket."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, text

from app.extensions import db
from app.models import EventSection, Order, OrderStatus, SectionKind, Ticket, TicketStatus
from app.models.base import utcnow
from app.models.codes import TicketClaim, sign_ticket
from app.models.order import seat_label
from app.services import checkin, ledger, reports
from app.services import events as event_service
from app.services.checkin.redis_keys import revoked_key, tickets_key
from tests.support.builders import PartnerActor, make_event, make_partner
from tests.support.database import DOMAIN_TABLES
from tests.support.gate import device, result, scan
from tests.support.money import cents, parse, records

pytestmark = pytest.mark.slow

TICKETS = 100_000
PER_ORDER = 500
ORDERS = TICKETS // PER_ORDER
PRICE = 10_000  # cents
FEE = PER_ORDER * PRICE // 10 + 100  # the platform's fee on each order


def stadium(partner) -> tuple:
    """A published event whose check-in is open, with one section of TICKETS seats, every one
    sold: ORDERS paid orders of PER_ORDER tickets, each paid by a captured card payment (the
    simulated acquirer's charge too) and posted to the ledger. Written in bulk SQL."""
    now = utcnow()
    event = make_event(
        partner,
        "Final at the Maracana",
        sections=0,
        checkin_opens_at=now - dt.timedelta(hours=1),
        checkin_closes_at=now + dt.timedelta(days=1),
    )
    section = EventSection(name="Arquibancada", kind=SectionKind.SEATED.value, price_cents=PRICE)
    event.sections.append(section)
    db.session.commit()
    ids = {"event": event.id, "section": section.id, "tickets": TICKETS, "orders": ORDERS,
           "per_order": PER_ORDER, "price": PRICE, "total": PER_ORDER * PRICE, "fee": FEE,
           "now": now}  # fmt: skip
    for statement in (
        """INSERT INTO event_spot (section_id, event_id, label, row_label, seat_number, position,
                                   status)
           SELECT :section, :event, 'R' || ((n - 1) / 1000 + 1) || '-' || ((n - 1) % 1000 + 1),
                  'R' || ((n - 1) / 1000 + 1), (n - 1) % 1000 + 1, n, 'sold'
           FROM generate_series(1, :tickets) AS n""",
        """INSERT INTO customer (name, email, created_at)
           SELECT 'Fan ' || n, 'fan' || n || '-' || :event || '@stadium.example', :now
           FROM generate_series(1, :orders) AS n""",
        """INSERT INTO "order" (customer_id, event_id, status, total_cents, currency, created_at,
                                paid_at)
           SELECT id, :event, 'paid', :total, 'BRL', :now, :now FROM customer
           WHERE email LIKE '%-' || :event || '@stadium.example' ORDER BY id""",
        """INSERT INTO payment (order_id, idempotency_key, status, amount_cents, currency,
                                fee_cents, net_cents, gateway, gateway_ref, request_fingerprint,
                                created_at, captured_at, refunded_cents)
           SELECT id, 'stadium-' || id, 'captured', total_cents, 'BRL', :fee, total_cents - :fee,
                  'simulated', 'ch_stadium_' || id, md5(id::text) || md5(id::text), :now, :now, 0
           FROM "order" WHERE event_id = :event""",
        """INSERT INTO sim_acquirer_charge (id, idempotency_key, token, amount_cents, currency,
                                            status, refunded_cents, created_at)
           SELECT gateway_ref, idempotency_key, 'tok_stadium', amount_cents, 'BRL', 'succeeded', 0,
                  :now
           FROM payment JOIN "order" ON "order".id = payment.order_id
           WHERE "order".event_id = :event""",
        """INSERT INTO ticket (order_id, event_id, section_id, spot_id, price_cents, currency,
                               status, holder_name, issued_at)
           SELECT o.id, :event, :section, s.id, :price, 'BRL', 'valid', 'Fan ' || o.n, :now
           FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM event_spot
                 WHERE event_id = :event) AS s
           JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM "order"
                 WHERE event_id = :event) AS o ON o.n = (s.n - 1) / :per_order + 1""",
    ):
        db.session.execute(text(statement), ids)
    payments = db.session.execute(
        text("""SELECT payment.id, payment.order_id FROM payment
                JOIN "order" ON "order".id = payment.order_id WHERE "order".event_id = :event"""),
        ids,
    ).all()
    for payment_id, order_id in payments:
        sale = ledger.Sale(payment_id, order_id, partner.id, partner.name,
                           PER_ORDER * PRICE, FEE, PER_ORDER * PRICE - FEE, "BRL")  # fmt: skip
        ledger.post_sale(db.session, sale)
    event.publish()
    db.session.commit()
    return event, section


def with_codes(event, section, *ticket_ids: int) -> list[str]:
    """Sign codes for some of the event's tickets (the bulk insert left them without)."""
    codes = []
    for ticket_id in ticket_ids:
        ticket = db.session.get(Ticket, ticket_id)
        claim = TicketClaim(event.id, ticket.id, seat_label(section.name, ticket.spot.label))
        ticket.code = sign_ticket(event.signing_key, claim)
        codes.append(ticket.code)
    db.session.commit()
    return codes


@pytest.fixture
def truncated_after(db_context):
    """The domain tables truncated after the test, before the suite deletes what is left:
    deleting 100,000 spots checks each against the ticket table's dead rows (ticket.spot_id has
    no index but for valid tickets), which takes minutes."""
    yield
    db.session.rollback()
    db.session.remove()
    kept = {"partner", "ab_user_role", "ab_user"}  # referred to by tables the suite keeps
    with db.engine.begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(t for t in DOMAIN_TABLES if t not in kept)))


@pytest.mark.parametrize("store", ["redis"], indirect=True)
def test_a_stadium_sized_event_is_armed_refunded_and_reported_in_full(
    client, store, truncated_after, tasks_in_process, tmp_path, app, monkeypatch
):
    monkeypatch.setitem(app.config, "REPORTS_DIR", str(tmp_path))
    partner = make_partner("Federacao")
    event, section = stadium(partner)
    auth = device(partner, event)
    first, last = db.session.execute(
        select(func.min(Ticket.id), func.max(Ticket.id)).where(Ticket.event_id == event.id)
    ).one()
    codes = with_codes(event, section, first, last)
    cache = checkin.redis_client()

    assert checkin.arm_event(db.session, event.id)

    assert cache.hlen(tickets_key(event.id)) == TICKETS
    for code, ticket_id in zip(codes, (first, last), strict=True):
        answer = result(scan(client, auth, code))
        assert (answer["result"], answer["ticket_id"]) == ("valid", ticket_id)
        assert answer["holder_name"].startswith("Fan ") and answer["section"] == "Arquibancada"

    event_service.cancel_event(db.session, event.id, PartnerActor(partner), "Storm")
    # Cancelling queued the refunds, which ran in process once the cancellation committed.
    db.session.expire_all()
    orders = db.session.scalars(select(Order.status).where(Order.event_id == event.id)).all()
    assert orders == [OrderStatus.REFUNDED] * ORDERS
    revoked = select(func.count()).where(
        Ticket.event_id == event.id, Ticket.status == TicketStatus.REVOKED
    )
    assert db.session.scalar(revoked) == TICKETS
    refunded = text(
        "SELECT sum(refunded_cents) FROM sim_acquirer_charge WHERE token = 'tok_stadium'"
    )
    assert db.session.scalar(refunded) == TICKETS * PRICE
    assert cache.scard(revoked_key(event.id)) == TICKETS  # the gates heard of every refund
    assert checkin.arm_event(db.session, event.id)  # re-armed after, as the beat task does
    manifest = client.get(f"/api/v1/checkin/events/{event.id}/manifest", headers=auth)
    assert manifest.status_code == 200
    assert len(manifest.get_json()["revoked"]) == TICKETS
    assert len(manifest.get_json()["entries"]) == 2

    report = reports.request_report(
        db.session, PartnerActor(partner), "sales_by_event", "csv", now=utcnow()
    )
    assert report.status == "done", report.error
    lines = records(parse(reports.report_file(report, tmp_path).read_bytes(), "csv"))
    assert len([x for x in lines if x["line"] == "order"]) == ORDERS
    total = next(x for x in lines if x["line"] == "event total")
    assert (total["tickets"], total["tickets_refunded"]) == (str(TICKETS), str(TICKETS))
    assert cents(total["gross"]) == cents(total["refunds"]) == TICKETS * PRICE
    statement = reports.request_report(
        db.session, PartnerActor(partner), "partner_statement", "csv", now=utcnow(),
        start=utcnow().date(), end=utcnow().date(),
    )  # fmt: skip
    assert statement.status == "done", statement.error
