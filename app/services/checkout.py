"""Checkout: pay for a hold by card, at most once per attempt (DESIGN.md, "Purchase path" 2-3).

1. Record the attempt (order with priced pending tickets, pending payment under the client's
   idempotency key, unique in the database) and extend the hold to cover the payment.
2. Charge the card through the gateway, outside any row lock.
3. Confirm in one transaction: if the hold still owns its spots, issue the tickets and mark the
   order paid; if the hold was lost meanwhile, cancel the order and refund the charge.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from app.models import (
    Conflict,
    DomainError,
    Event,
    EventSpot,
    Hold,
    HoldStatus,
    NotFound,
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    Ticket,
)
from app.models.base import utcnow
from app.services import ledger, refunds
from app.services.holds import hold_duration, spots_of_hold
from app.services.locking import busy_on_lock_failure
from app.services.payments import ChargeResult, ChargeStatus, PaymentGateway

log = logging.getLogger(__name__)

# A hold entering payment is extended so a slow card does not lose it mid-charge.
PAYMENT_GRACE = dt.timedelta(minutes=2)
# How long a retry waits for the first attempt under the same key before finishing it itself.
IN_FLIGHT_WAIT_SECONDS = 6.0
# A pending payment this old is finished by the reconcile task.
STALE_PAYMENT = dt.timedelta(minutes=2)


class CardDeclined(DomainError):
    status = 402
    code = "card_declined"


class HoldExpired(Conflict):
    code = "hold_expired"


class HoldLost(Conflict):
    code = "hold_lost"


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"


class CheckoutInProgress(Conflict):
    code = "checkout_in_progress"


@dataclass(frozen=True)
class CheckoutResult:
    order: Order
    payment: Payment
    replayed: bool  # True when a retry returned the first attempt's result


def fingerprint(hold_id: int, card_token: str) -> str:
    return hashlib.sha256(f"{hold_id}|{card_token}".encode()).hexdigest()


def checkout(
    session: Session,
    gateway: PaymentGateway,
    customer_id: int,
    hold_id: int,
    card_token: str,
    idempotency_key: str,
) -> CheckoutResult:
    """Pay for ``hold_id``; a retry with the same key and body returns the same order."""
    key = (idempotency_key or "").strip()
    if not 8 <= len(key) <= 100:
        raise DomainError(
            "Send an Idempotency-Key of 8 to 100 characters.", field="Idempotency-Key"
        )
    if not card_token:
        raise DomainError("Give the card token.", field="card_token")
    wanted = fingerprint(hold_id, card_token)
    previous = _payment_for_key(session, key)
    if previous is not None:
        return _replay(session, gateway, previous, customer_id, wanted)
    try:
        payment = _record_attempt(session, gateway, customer_id, hold_id, card_token, key, wanted)
    except IntegrityError:
        # The same key raced us to the database: answer what that attempt answers.
        session.rollback()
        previous = _payment_for_key(session, key)
        if previous is None:
            raise
        return _replay(session, gateway, previous, customer_id, wanted)
    return complete_payment(session, gateway, payment.id)


def complete_payment(session: Session, gateway: PaymentGateway, payment_id: int) -> CheckoutResult:
    """Charge a recorded attempt and confirm it. The gateway answers a repeated charge under the
    same key with the first outcome, so an unfinished attempt (a crash, a timeout, a busy lock)
    is finished by calling this again: from a retry, or from the reconcile task."""
    payment = session.get(Payment, payment_id)
    try:
        result = gateway.charge(
            payment.gateway_token or "",
            payment.amount_cents,
            payment.currency,
            payment.idempotency_key,
        )
    except Exception as exc:  # noqa: BLE001 - the network to the processor, whatever failed
        session.rollback()
        log.exception("payment processor call failed", extra={"payment_id": payment_id})
        raise CheckoutInProgress(
            "The payment processor did not answer; this payment will be finished shortly. "
            "Try again in a minute.",
        ) from exc
    return _confirm(session, gateway, payment_id, result)


def _payment_for_key(session: Session, key: str) -> Payment | None:
    return session.scalar(select(Payment).where(Payment.idempotency_key == key))


def _replay(
    session: Session, gateway: PaymentGateway, payment: Payment, customer_id: int, wanted: str
) -> CheckoutResult:
    if payment.order.customer_id != customer_id or payment.request_fingerprint != wanted:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request.", field="Idempotency-Key"
        )
    deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
    while payment.status == PaymentStatus.PENDING and time.monotonic() < deadline:
        time.sleep(0.1)
        session.expire_all()
        payment = session.get(Payment, payment.id)
    session.expire_all()
    payment = session.get(Payment, payment.id)
    if payment.status == PaymentStatus.PENDING:
        # The first attempt did not finish (or is slow): finish it, charging at most once.
        return replace(complete_payment(session, gateway, payment.id), replayed=True)
    _raise_for_failure(payment)
    return CheckoutResult(payment.order, payment, replayed=True)


def _raise_for_failure(payment: Payment) -> None:
    if payment.status in (PaymentStatus.DECLINED, PaymentStatus.FAILED):
        raise CardDeclined(
            _decline_message(payment.failure_reason),
            reason=payment.failure_reason or "card_declined",
        )
    if payment.order.status == OrderStatus.CANCELLED:
        refunded = payment.status == PaymentStatus.REFUNDED
        raise HoldLost(
            "Your seats were released before the payment completed; "
            + ("the charge was refunded." if refunded else "the charge is being refunded."),
            order_id=payment.order_id,
            refunded=refunded,
        )


DECLINE_MESSAGES = {
    "card_declined": "Your card was declined.",
    "insufficient_funds": "Your card was declined: insufficient funds.",
    "processing_error": "The card processor had an error; nothing was charged. Try again.",
    "invalid_token": "The card could not be read; enter it again.",
    "token_already_used": "This card entry was already used for a payment; enter the card again.",
    "token_expired": "This card entry expired; enter the card again.",
}


def _decline_message(reason: str | None) -> str:
    return DECLINE_MESSAGES.get(reason or "", "Your card was declined.")


def _record_attempt(
    session: Session,
    gateway: PaymentGateway,
    customer_id: int,
    hold_id: int,
    card_token: str,
    key: str,
    wanted: str,
) -> Payment:
    now = utcnow()
    with busy_on_lock_failure(session):
        hold = session.scalars(
            select(Hold)
            .where(Hold.id == hold_id, Hold.customer_id == customer_id)
            .options(joinedload(Hold.event).joinedload(Event.partner), joinedload(Hold.customer))
            .with_for_update(of=Hold)
        ).first()
        if hold is None:
            raise NotFound("Hold not found.")
        if hold.status == HoldStatus.CONVERTED:
            order = session.scalar(select(Order).where(Order.hold_id == hold.id))
            raise Conflict("This hold is already paid for.", order_id=order.id if order else None)
        spots = spots_of_hold(session, hold.id, lock=True)
        if not hold.is_live(now) or not spots:
            raise HoldExpired("Your hold has expired: choose your seats again.")
        hold.event.require_on_sale(now)
        order = session.scalar(select(Order).where(Order.hold_id == hold.id))
        if order is None:
            order = _new_order(session, hold, spots)
        elif order.status != OrderStatus.PENDING:
            raise Conflict(f"Order {order.id} is {order.status}.")
        elif any(p.status == PaymentStatus.PENDING for p in order.payments):
            raise CheckoutInProgress("A payment for these seats is being processed.")
        partner = hold.event.partner
        fee = partner.platform_fee_cents(order.total_cents, len(order.tickets))
        payment = Payment(
            order=order,
            idempotency_key=key,
            request_fingerprint=wanted,
            amount_cents=order.total_cents,
            currency=order.currency,
            fee_cents=fee,
            net_cents=order.total_cents - fee,
            gateway=gateway.name,
            status=PaymentStatus.PENDING.value,
            gateway_token=card_token,
            created_at=now,
        )
        session.add(payment)
        # Cover the payment, but never beyond one grace period past the hold's own length:
        # repeated attempts must not keep seats forever.
        longest = hold.created_at + hold_duration() + PAYMENT_GRACE
        hold.expires_at = max(hold.expires_at, min(now + PAYMENT_GRACE, longest))
        for spot in spots:
            spot.held_until = hold.expires_at
        session.commit()
    return payment


def _new_order(session: Session, hold: Hold, spots: list[EventSpot]) -> Order:
    """An order for the hold with one pending ticket per spot at today's section price."""
    event = hold.event
    order = Order(
        customer=hold.customer,
        event=event,
        hold_id=hold.id,
        currency=event.currency,
        status=OrderStatus.PENDING.value,
    )
    session.add(order)
    holder = hold.customer.name
    for spot in spots:
        order.tickets.append(
            Ticket(
                event=event,
                section=spot.section,
                spot=spot,
                price_cents=spot.section.price_cents,
                currency=event.currency,
                holder_name=holder,
            )
        )
    order.total_cents = sum(t.price_cents for t in order.tickets)
    session.flush()
    return order


def _confirm(
    session: Session, gateway: PaymentGateway, payment_id: int, result: ChargeResult
) -> CheckoutResult:
    status, reference, reason = result.status, result.reference, result.reason
    now = utcnow()
    lost = False
    session.expire_all()  # what other requests committed while the card was charged
    with busy_on_lock_failure(session):
        payment = session.scalars(
            select(Payment)
            .where(Payment.id == payment_id)
            .options(joinedload(Payment.order))
            .with_for_update(of=Payment)
        ).one()
        if payment.status != PaymentStatus.PENDING:  # a retry or the reconcile task finished it
            session.commit()
            _raise_for_failure(payment)
            return CheckoutResult(payment.order, payment, replayed=True)
        if result.card is not None:  # what the gateway says of the card: never the number
            payment.card_brand = result.card.brand
            payment.card_last4 = result.card.last4
            payment.card_exp_month = result.card.exp_month
            payment.card_exp_year = result.card.exp_year
        if status != ChargeStatus.APPROVED:
            payment.decline(reason or "card_declined", failed=status == ChargeStatus.ERROR)
            session.commit()
            _raise_for_failure(payment)
        payment.capture(reference or "", now)
        order = payment.order
        hold = (
            session.scalars(
                select(Hold)
                .where(Hold.id == order.hold_id)
                .options(joinedload(Hold.event).joinedload(Event.partner))
                .with_for_update(of=Hold)
            ).first()
            if order.hold_id
            else None
        )
        spots = spots_of_hold(session, hold.id, lock=True) if hold else []
        wanted = {ticket.spot_id for ticket in order.tickets}
        kept = hold is not None and hold.is_live(now) and {s.id for s in spots} == wanted
        if kept and order.status == OrderStatus.PENDING and order.event.is_on_sale(now):
            try:
                order.mark_paid(now)
                hold.status = HoldStatus.CONVERTED.value
                ledger.post_sale(session, payment)  # flushes: the ticket index checks here
                session.commit()
            except IntegrityError:
                # The unique live-ticket index refused: treat as lost (never sell twice).
                session.rollback()
                lost = True
        else:
            lost = True
        if lost:
            _cancel_lost(session, payment_id, reference or "", now)
    if lost:
        _refund_lost(session, gateway, payment_id)
        payment = session.get(Payment, payment_id)
        _raise_for_failure(payment)
    payment = session.get(Payment, payment_id)
    log.info(
        "order paid",
        extra={
            "order_id": payment.order_id,
            "payment_id": payment.id,
            "amount": payment.amount_cents,
        },
    )
    return CheckoutResult(payment.order, payment, replayed=False)


def _cancel_lost(session: Session, payment_id: int, reference: str, now: dt.datetime) -> None:
    session.expire_all()
    payment = session.get(Payment, payment_id, with_for_update=True)
    if payment.status == PaymentStatus.PENDING:
        payment.capture(reference, now)
    if payment.status == PaymentStatus.CAPTURED:
        ledger.post_unsold_capture(session, payment)  # once: posting is idempotent by cause
    order = payment.order
    if order.status == OrderStatus.PENDING:
        order.cancel("hold_lost")
    hold = session.get(Hold, order.hold_id, with_for_update=True) if order.hold_id else None
    if hold is not None:
        for spot in spots_of_hold(session, hold.id, lock=True):
            spot.release()
        if hold.status == HoldStatus.ACTIVE:
            hold.status = HoldStatus.EXPIRED.value
    session.commit()


def _refund_lost(session: Session, gateway: PaymentGateway, payment_id: int) -> None:
    """Refund a charge whose order was cancelled; on failure the reconcile task tries again."""
    payment = session.get(Payment, payment_id)
    try:
        refunded = gateway.refund(
            payment.gateway_ref or "", payment.amount_cents, key=f"refund:payment:{payment.id}"
        )
    except Exception:  # noqa: BLE001 - the network to the processor, whatever failed
        log.exception("refund call failed", extra={"payment_id": payment_id})
        refunded = False
    if refunded:
        payment = session.get(Payment, payment_id, with_for_update=True)
        if payment.status == PaymentStatus.CAPTURED:
            payment.mark_refunded(utcnow())
            ledger.post_unsold_refund(session, payment)
        session.commit()
    else:
        log.error("refund of a cancelled order failed", extra={"payment_id": payment_id})


def reconcile_payments(
    session: Session, gateway: PaymentGateway, now: dt.datetime
) -> dict[str, int]:
    """Finish what crashed or timed out: pending payments older than STALE_PAYMENT are charged
    (at most once, by their key) and confirmed; captured charges of cancelled orders are
    refunded. Returns how many of each were handled."""
    stale = session.scalars(
        select(Payment.id).where(
            Payment.status == PaymentStatus.PENDING, Payment.created_at < now - STALE_PAYMENT
        )
    ).all()
    finished = 0
    for payment_id in stale:
        try:
            complete_payment(session, gateway, payment_id)
        except DomainError:
            session.rollback()
        finished += 1
    unrefunded = session.scalars(
        select(Payment.id)
        .join(Order, Order.id == Payment.order_id)
        .where(Payment.status == PaymentStatus.CAPTURED, Order.status == OrderStatus.CANCELLED)
    ).all()
    for payment_id in unrefunded:
        _refund_lost(session, gateway, payment_id)
    pending = refunds.finish_pending_refunds(session, gateway, now)
    return {
        "finished": finished,
        "refunds_retried": len(unrefunded),
        "pending_refunds_finished": pending,
    }
