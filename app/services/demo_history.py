"""The demo's past: a week of sales before today, so that the dashboard's figures, settlement,
payouts and reports have something to show right after `make run`.

Each sale goes through the purchase path as a customer's does (the simulated acquirer's token,
a hold, the checkout: order, tickets, payment, ledger posting), then it and the acquirer's charge
are dated back to the moment the history gives it, as if it had happened then (as the money
tests' ``happened_days_ago`` does). The days before today are over, so the periodic settlement
reconciles them at once (their report comes from the acquirer's charges of that day), and the
payout run pays the partners' settled money. Some of the gala's tickets (its doors are open
today) are scanned in at its gates, through the check-in service.

The history is the same on every load (a seeded random generator per event). Events with a
waiting room get none: their on-sale is the demo's waiting room. Money is integer cents.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import sim_acquirer
from app.models import (
    Customer,
    DomainError,
    Event,
    EventStatus,
    Hold,
    LedgerTransaction,
    Order,
    Payment,
    Ticket,
    TicketStatus,
)
from app.models.base import utcnow
from app.services import purchase
from app.services.checkin import scan_log, scanners, scanning
from app.services.checkin.rules import parse_scan
from app.services.payments import gateway
from app.sim_acquirer.models import SimCharge, SimToken

DAYS = 7  # days of sales before today (today has some too)
BUYERS = 40  # demo buyers: each buys at most a few tickets per event (MAX_SPOTS_PER_EVENT)
ORDERS_PER_DAY = (1, 5)
TICKETS_PER_ORDER = (1, 4)
SHARE_ADMITTED = 0.35  # of the tickets of an event whose doors are open today
GATES = ("Portão A", "Portão B")
DEMO_CARD = {
    "number": "4242424242424242",
    "exp_month": 12,
    "cvc": "123",
    "holder_name": "Comprador Demo",
}


def add_sales(
    session: Session, event_ids: list[int], now: dt.datetime, gate_user_id: int | None
) -> int:
    """A week of sales (and today's so far) for each event of ``event_ids`` on sale without a
    waiting room; returns how many orders were made."""
    buyers = _buyers(session)
    made = 0
    for event_id in event_ids:
        event = session.get(Event, event_id)
        if event is None or event.status != EventStatus.PUBLISHED or event.waiting_room_per_minute:
            continue
        made += _sell_history(session, event, buyers, now)
        if gate_user_id is not None and event.checkin_opens_at and event.checkin_opens_at <= now:
            _admit_some(session, event, gate_user_id)
    return made


def _buyers(session: Session) -> list[int]:
    """The demo buyers' customer ids (made once; they have no login)."""
    emails = [f"comprador{n:02d}@example.com" for n in range(1, BUYERS + 1)]
    known = dict(session.execute(select(Customer.email, Customer.id)).all())
    for number, email in enumerate(emails, start=1):
        if email not in known:
            # Confirmed, as every demo customer: mails about their orders are not held.
            session.add(
                Customer(name=f"Comprador {number:02d}", email=email, email_confirmed_at=utcnow())
            )
    session.commit()
    known = dict(session.execute(select(Customer.email, Customer.id)).all())
    return [known[email] for email in emails]


def _moments(rng: random.Random, now: dt.datetime) -> list[dt.datetime]:
    """When the event's orders were paid: a few a day over the last DAYS days, more towards
    today, and some today before now."""
    today = dt.datetime.combine(now.date(), dt.time.min)
    moments = []
    for days_ago in range(DAYS, -1, -1):
        start = today - dt.timedelta(days=days_ago)
        span = (now - start).total_seconds() - 60 if days_ago == 0 else 24 * 3600 - 60
        if span <= 0:
            continue
        low, high = ORDERS_PER_DAY
        count = rng.randint(low, high + (DAYS - days_ago) // 3)
        moments += sorted(start + dt.timedelta(seconds=rng.uniform(0, span)) for _ in range(count))
    return moments


def _sell_history(session: Session, event: Event, buyers: list[int], now: dt.datetime) -> int:
    rng = random.Random(f"demo:{event.name}")  # noqa: S311 - demo data, not security
    sections = [s.id for s in event.sections]
    made = 0
    for number, moment in enumerate(_moments(rng, now)):
        customer_id = buyers[number % len(buyers)]
        quantity = rng.randint(*TICKETS_PER_ORDER)
        section_id = rng.choice(sections)
        try:
            order_id = _buy(session, customer_id, event.id, section_id, quantity)
        except DomainError:  # the section is sold out: this buyer goes without
            session.rollback()
            continue
        _date_back(session, order_id, moment)
        made += 1
    return made


def _buy(session: Session, customer_id: int, event_id: int, section_id: int, quantity: int) -> int:
    """One purchase through the purchase path, paid with the acquirer's approving test card."""
    card = {**DEMO_CARD, "exp_year": dt.date.today().year + 2}
    token = sim_acquirer.tokenize(card)["token"]
    hold = purchase.hold.reserve_spots(
        session, customer_id, event_id, section_id=section_id, quantity=quantity
    )
    result = purchase.checkout.checkout(
        session, gateway(), customer_id, hold.id, token, f"demo-{uuid.uuid4().hex}"
    )
    return result.order_id


def _date_back(session: Session, order_id: int, moment: dt.datetime) -> None:
    """The order, its hold, tickets, payment and ledger posting, and the acquirer's charge and
    token, as if the customer had paid at ``moment``."""
    order = session.get(Order, order_id)
    payment = session.scalars(select(Payment).where(Payment.order_id == order_id)).one()
    held_at = moment - dt.timedelta(minutes=3)
    changes: list[tuple[Any, Any, dict[str, Any]]] = [
        (Order, Order.id == order_id, {"created_at": held_at, "paid_at": moment}),
        (Hold, Hold.id == order.hold_id, {"created_at": held_at,
                                          "expires_at": held_at + dt.timedelta(minutes=10)}),
        (Ticket, Ticket.order_id == order_id, {"issued_at": moment}),
        (Payment, Payment.id == payment.id, {"created_at": held_at, "captured_at": moment}),
        (LedgerTransaction, LedgerTransaction.payment_id == payment.id, {"created_at": moment}),
        (SimCharge, SimCharge.id == payment.gateway_ref, {"created_at": moment}),
        (SimToken, SimToken.token == payment.gateway_token, {"created_at": held_at,
                                                             "used_at": moment}),
    ]  # fmt: skip
    for model, where, values in changes:
        session.execute(update(model).where(where).values(**values))
    session.commit()


def _admit_some(session: Session, event: Event, gate_user_id: int) -> None:
    """Scan in a share of the event's tickets at its gates, as its gate staff would."""
    rng = random.Random(f"demo-gates:{event.name}")  # noqa: S311 - demo data
    codes = session.scalars(
        select(Ticket.code)
        .where(Ticket.event_id == event.id, Ticket.status == TicketStatus.VALID)
        .order_by(Ticket.id)
    ).all()
    scanner = scanners.staff_scanner(session, gate_user_id)
    for code in rng.sample(codes, int(len(codes) * SHARE_ADMITTED)):
        request = {
            "code": code,
            "gate": rng.choice(GATES),
            "direction": "in",
            "nonce": f"demo-{uuid.uuid4().hex}",
            "event_id": event.id,
        }
        scanning.scan(session, scanner, parse_scan(request))
    scan_log.flush_scan_log(session)  # with Redis, the entries reach the database now
