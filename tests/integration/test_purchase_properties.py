"""Hypothesis drives random sequences of hold / expire / release / pay / decline / lost-hold
through the purchase services and checks the invariants after every step."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from flask import current_app
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule
from sqlalchemy import func, select, text

from app import sim_acquirer
from app.extensions import db
from app.models import (
    DomainError,
    Event,
    EventSpot,
    Hold,
    HoldStatus,
    LedgerEntry,
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    SpotStatus,
    Ticket,
    TicketStatus,
)
from app.models.base import utcnow
from app.services import customers, ledger, purchase
from app.services.payments import SimulatedGateway
from tests.support.builders import make_event, make_partner
from tests.support.database import empty_domain_tables

pytestmark = pytest.mark.slow


CARDS = {"approve": "4242424242424242", "decline": "4000000000000002"}


class LosingGateway(SimulatedGateway):
    """Charges like the simulated acquirer, but first lets the hold expire and another
    customer take its seats: the payment succeeds after the hold was lost."""

    def __init__(self, thief_id: int) -> None:
        self.thief_id = thief_id
        self.hold_id: int | None = None

    def charge(self, token, amount_cents, currency, idempotency_key):
        hold = db.session.get(Hold, self.hold_id)
        spot_ids = [s.id for s in hold.spots]
        _expire(hold)
        purchase.release.release_expired_holds(db.session)
        purchase.hold.reserve_spots(db.session, self.thief_id, hold.event_id, spot_ids=spot_ids)
        return super().charge(token, amount_cents, currency, idempotency_key)


def _token(card: str) -> str:
    """A fresh card token (they are single-use)."""
    return sim_acquirer.tokenize(
        {"number": CARDS[card], "exp_month": 12, "exp_year": utcnow().year + 1, "cvc": "123",
         "holder_name": "P"}
    )["token"]  # fmt: skip


def _expire(hold: Hold) -> None:
    hold.created_at = utcnow() - dt.timedelta(minutes=30)
    hold.expires_at = utcnow() - dt.timedelta(seconds=1)
    for spot in hold.spots:
        spot.held_until = hold.expires_at
    db.session.commit()


class PurchaseMachine(RuleBasedStateMachine):
    held = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        empty_domain_tables(current_app)
        event = make_event(make_partner("Props"), "Props Night", rows=("A", "B"), seats=4)
        event.publish()
        db.session.commit()
        self.event_id = event.id
        self.section_id = event.sections[0].id
        self.spot_ids = [s.id for s in event.sections[0].spots]
        sm = current_app.appbuilder.sm
        self.customers = [
            customers.sign_up(db.session, sm, f"P{n}", f"p{n}-{uuid.uuid4().hex[:6]}@ex.com",
                              "Ingresso-Azul-77").id
            for n in range(3)
        ]  # fmt: skip
        self.thief = self.customers[-1]

        self.granted: dict[int, set[int]] = {}  # hold id -> spots it was given

    @rule(
        target=held,
        customer=st.integers(0, 1),
        picks=st.lists(st.integers(0, 7), min_size=1, max_size=3, unique=True),
    )
    def hold_chosen(self, customer, picks):
        try:
            hold = purchase.hold.reserve_spots(
                db.session,
                self.customers[customer],
                self.event_id,
                spot_ids=[self.spot_ids[i] for i in picks],
            )
        except DomainError:
            db.session.rollback()
            return None
        return self._granted(customer, hold)

    def _granted(self, customer: int, hold: Hold) -> tuple[int, int]:
        self.granted[hold.id] = {spot.id for spot in hold.spots}
        return (self.customers[customer], hold.id)

    @rule(target=held, customer=st.integers(0, 1), quantity=st.integers(1, 3))
    def hold_best(self, customer, quantity):
        try:
            hold = purchase.hold.reserve_spots(
                db.session,
                self.customers[customer],
                self.event_id,
                section_id=self.section_id,
                quantity=quantity,
            )
        except DomainError:
            db.session.rollback()
            return None
        return self._granted(customer, hold)

    @rule(entry=held)
    def release(self, entry):
        if entry is None:
            return
        try:
            purchase.release.release_hold(db.session, *entry)
        except DomainError:
            db.session.rollback()

    @rule(entry=held, sweep=st.booleans())
    def expire(self, entry, sweep):
        if entry is None:
            return
        hold = db.session.get(Hold, entry[1])
        if hold.status == HoldStatus.ACTIVE:
            _expire(hold)
        if sweep:
            purchase.release.release_expired_holds(db.session)

    @rule(entry=held, card=st.sampled_from(sorted(CARDS)), retry=st.booleans())
    def pay(self, entry, card, retry):
        if entry is None:
            return
        key, token = uuid.uuid4().hex, _token(card)
        for _ in range(2 if retry else 1):
            try:
                purchase.checkout.checkout(
                    db.session, SimulatedGateway(), entry[0], entry[1], token, key
                )
            except DomainError:
                db.session.rollback()

    @rule(entry=held)
    def pay_after_losing_the_hold(self, entry):
        if entry is None:
            return
        gateway = LosingGateway(self.thief)
        gateway.hold_id = entry[1]
        hold = db.session.get(Hold, entry[1])
        if hold.status != HoldStatus.ACTIVE or not hold.is_live(utcnow()):
            return
        try:
            purchase.checkout.checkout(
                db.session, gateway, entry[0], entry[1], _token("approve"), uuid.uuid4().hex
            )
        except DomainError:
            db.session.rollback()

    @invariant()
    def a_spot_is_sold_at_most_once_and_exactly_when_it_has_a_live_ticket(self):
        db.session.rollback()
        live = db.session.execute(
            select(Ticket.spot_id, func.count())
            .where(Ticket.status == TicketStatus.VALID)
            .group_by(Ticket.spot_id)
        ).all()
        assert all(count == 1 for _, count in live)
        sold = set(db.session.scalars(select(EventSpot.id).where(EventSpot.status == "sold")))
        assert sold == {spot_id for spot_id, _ in live}

    @invariant()
    def a_live_hold_keeps_every_spot_it_was_given(self):
        now = utcnow()
        for hold_id, spot_ids in self.granted.items():
            hold = db.session.get(Hold, hold_id)
            if hold is None or not hold.is_live(now):
                continue
            spots = db.session.scalars(select(EventSpot).where(EventSpot.id.in_(spot_ids)))
            assert {(s.status, s.hold_id) for s in spots} == {(SpotStatus.HELD, hold_id)}

    @invariant()
    def held_spots_belong_to_an_active_hold(self):
        for spot in db.session.scalars(select(EventSpot).where(EventSpot.status == "held")):
            hold = db.session.get(Hold, spot.hold_id)
            assert hold is not None and hold.status == HoldStatus.ACTIVE

    @invariant()
    def every_charge_has_its_tickets_or_was_refunded(self):
        for payment in db.session.scalars(select(Payment)):
            order = db.session.get(Order, payment.order_id)
            if payment.status == PaymentStatus.CAPTURED:
                assert order.status == OrderStatus.PAID
                assert payment.amount_cents == sum(t.price_cents for t in order.live_tickets)
                assert len(order.live_tickets) == len(order.tickets) > 0
                assert payment.fee_cents + payment.net_cents == payment.amount_cents
            if payment.status == PaymentStatus.REFUNDED:
                assert order.status == OrderStatus.CANCELLED
                assert order.live_tickets == []
        for order in db.session.scalars(select(Order).where(Order.status == OrderStatus.PAID)):
            captured = [p for p in order.payments if p.status == PaymentStatus.CAPTURED]
            assert len(captured) == 1, "a paid order is charged exactly once"

    @invariant()
    def the_acquirer_charged_exactly_what_we_recorded(self):
        charged = db.session.scalar(
            text("SELECT COALESCE(SUM(amount_cents - refunded_cents), 0) FROM sim_acquirer_charge "
                 "WHERE status = 'succeeded'")
        )  # fmt: skip
        kept = db.session.scalar(
            select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(
                Payment.status == PaymentStatus.CAPTURED
            )
        )
        assert charged == kept

    @invariant()
    def the_ledger_balances_and_matches_the_money(self):
        per_transaction = db.session.execute(
            select(LedgerEntry.transaction_id, LedgerEntry.currency,
                   func.sum(LedgerEntry.amount_cents))
            .group_by(LedgerEntry.transaction_id, LedgerEntry.currency)
        ).all()  # fmt: skip
        assert all(total == 0 for _, _, total in per_transaction)
        captured = db.session.scalars(
            select(Payment).where(Payment.status == PaymentStatus.CAPTURED)
        ).all()
        clearing = ledger.balance(db.session, ledger.account(db.session, ledger.CLEARING), "BRL")
        assert clearing == sum(p.amount_cents for p in captured)
        partner = db.session.get(Event, self.event_id).partner
        assert ledger.partner_balance(db.session, partner, "BRL") == sum(
            p.net_cents for p in captured
        )
        db.session.rollback()

    def teardown(self) -> None:
        db.session.rollback()


PurchaseMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_purchase_invariants_hold_under_random_sequences(db_context):
    PurchaseMachine.TestCase().runTest()
