"""Refunds of paid orders, by the partner or the platform (ARCHITECTURE.md, "Money"), and by
the customer while the event's refund window is open.

A used ticket (admitted at a gate: checkin/entries.py) is never refunded by the customer's
self-service; the partner and the platform may refund it, and are shown its entry
(used_tickets). Its spot is then withdrawn from sale rather than resold: its holder is inside."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, joinedload

from app import metrics
from app.i18n import current_locale
from app.models import (
    Conflict,
    DomainError,
    Event,
    EventStatus,
    NotFound,
    Order,
    OrderStatus,
    Payment,
    PaymentRefund,
    PaymentStatus,
    RefundStatus,
    Ticket,
    TicketStatus,
    local_time,
)
from app.models.base import any_of, utcnow
from app.services import ledger
from app.services.after_commit import enqueue_again
from app.services.checkin import arming
from app.services.checkin.entries import first_entries
from app.services.locking import busy_on_lock_failure
from app.services.mail import notice_mails
from app.services.payments import PaymentGateway
from app.services.scoping import SYSTEM, Actor, is_platform_staff, owned_query
from app.services.webhooks import outbox as webhooks

log = logging.getLogger(__name__)


class RefundFailed(Conflict):
    code = "refund_failed"
    status = 502


def refund_tickets(
    session: Session,
    gateway: PaymentGateway,
    order_id: int,
    ticket_ids: Iterable[int],
    actor: Actor,
) -> Order:
    """Refund some valid tickets of a paid order (a partner only its own events' orders, the
    platform any): the card gets exactly their prices back, then in one transaction they are
    revoked, their spots return to sale (unless the event is cancelled), the payment records
    what went back and the ledger posts it; the order is refunded once no valid ticket is left.
    Tickets already refunded: Conflict naming them. The refund is recorded before the processor
    is asked, under the key it is asked with: asking again after a crash finishes that refund
    and the card is refunded once."""
    wanted = sorted({int(ticket_id) for ticket_id in ticket_ids})
    order, refund_id = _claim(session, order_id, actor, wanted)
    if refund_id is None:
        return order
    return _complete(session, gateway, order.id, refund_id, by=refund_source(actor))


def refund_order(
    session: Session,
    gateway: PaymentGateway,
    order_id: int,
    actor: Actor,
    *,
    by: str | None = None,
    held_by: int | None = None,
) -> Order:
    """Refund a paid order in full: every ticket still valid, as ``refund_tickets`` does (asking
    twice refunds once). A refund of the order left unfinished (a crash) is finished first.
    ``by``: who asked, for the refunds metric (the actor's kind when not given). ``held_by``:
    the buyer cancelling it themselves: refused (TicketUsed, TicketTransferred) when a ticket
    to refund was used at a gate or is held by another customer, judged under the order's lock
    (a transfer locks it too, so none slips in between the check and the claim)."""
    while True:
        order, refund_id = _claim(session, order_id, actor, None, held_by=held_by)
        if refund_id is None:
            return order
        order = _complete(session, gateway, order_id, refund_id, by=by or refund_source(actor))


def refund_source(actor: Actor) -> str:
    """Who asked for a refund, as the refunds metric counts it."""
    if actor is SYSTEM:
        return "system"
    return "admin" if is_platform_staff(actor) else "partner"


def _claim(
    session: Session,
    order_id: int,
    actor: Actor,
    ticket_ids: list[int] | None,
    *,
    held_by: int | None = None,
) -> tuple[Order, int | None]:
    """Record the refund of these tickets (None: a refund left unfinished, else every valid
    ticket) as pending, or find the pending one a retry asks for again. Returns the order and
    the refund's id; None when a full refund finds nothing left to refund. ``held_by``: a new
    refund is refused unless every ticket it takes is unused and held by this customer."""
    with busy_on_lock_failure(session):
        order = _locked_order(session, order_id, actor)
        if order.status not in (OrderStatus.PAID, OrderStatus.REFUNDED):
            raise Conflict(
                gettext(
                    "Order %(id)s is %(status)s: only a paid order is refunded.",
                    id=order.id,
                    status=order.status,
                )
            )
        tickets = order.tickets_to_refund(ticket_ids) if ticket_ids is not None else None
        if order.status == OrderStatus.REFUNDED:
            if any(p.status == PaymentStatus.CHARGED_BACK for p in order.payments):
                raise Conflict(
                    gettext(
                        "Order %(id)s was charged back by the card holder's bank: there is "
                        "nothing left to refund.",
                        id=order.id,
                    )
                )
            session.rollback()
            return order, None
        payment = _captured(order)
        if tickets is None:
            unfinished = payment.pending_refunds
            refund = unfinished[0] if unfinished else None
            tickets = order.live_tickets
        else:
            refund = next(
                (r for r in payment.pending_refunds if [t.id for t in r.tickets] == ticket_ids),
                None,
            )
        if refund is None:
            if held_by is not None:
                _require_held_and_unused(session, order, tickets, held_by)
            refund = payment.start_refund(tickets, utcnow())
        session.commit()
        return order, refund.id


def _require_held_and_unused(
    session: Session, order: Order, tickets: list[Ticket], customer_id: int
) -> None:
    """The customer's own cancellation, under the order's lock: none of these tickets used at a
    gate (TicketUsed naming them) nor held by another customer (TicketTransferred: the buyer's
    cancellation would void it under its holder; the organiser may still refund it)."""
    used = used_tickets(session, order, tickets)
    if used:
        session.rollback()
        raise TicketUsed(
            gettext(
                "Used at the gate: %(tickets)s. An order with a used ticket is not cancelled "
                "here: contact the organiser.",
                tickets="; ".join(u.describe() for u in used),
            ),
            tickets=[u.to_json() for u in used],
        )
    handed_on = sorted(
        (t for t in tickets if t.owner_customer_id != customer_id), key=lambda t: t.id
    )
    if handed_on:
        seats = ", ".join(t.seat_label for t in handed_on)
        ids = [t.id for t in handed_on]
        session.rollback()
        raise TicketTransferred(
            gettext(
                "Transferred to another customer: %(seats)s. An order with a transferred "
                "ticket is not cancelled here: contact the organiser.",
                seats=seats,
            ),
            tickets=ids,
        )


def _complete(
    session: Session, gateway: PaymentGateway, order_id: int, refund_id: int, *, by: str = "system"
) -> Order:
    """Ask the processor for a pending refund (no lock held meanwhile), then book it."""
    refund = session.get(PaymentRefund, refund_id)
    reference, amount, key = (
        refund.payment.gateway_ref or "",
        refund.amount_cents,
        refund.idempotency_key,
    )
    session.rollback()
    if amount and not gateway.refund(reference, amount, key):
        _drop(session, order_id, refund_id)
        raise RefundFailed(
            gettext(
                "The payment processor refused to refund order %(order_id)s.", order_id=order_id
            )
        )
    with busy_on_lock_failure(session):
        order = _locked_order(session, order_id, SYSTEM)
        refund = session.get(PaymentRefund, refund_id)
        if refund is None:  # the processor refused it to a concurrent call
            raise RefundFailed(
                gettext(
                    "The payment processor refused to refund order %(order_id)s.", order_id=order_id
                )
            )
        if refund.status == RefundStatus.DONE:  # someone else finished it meanwhile
            session.rollback()
            return order
        now = utcnow()
        tickets = _tickets_with_spots(session, refund_id)
        cancelled = order.event.status == EventStatus.CANCELLED
        # A used ticket's holder is inside: its seat is withdrawn, not sold again.
        ids = [t.id for t in tickets]
        inside = {} if cancelled else first_entries(session, order.event_id, ids)
        order.revoke_tickets(tickets, now, event_cancelled=cancelled, occupied=inside.keys())
        refund.payment.complete_refund(refund, now)
        refund.ledger_transaction_id = ledger.post_refund(
            session, refund, return_platform_fee=current_app.config["REFUND_RETURNS_PLATFORM_FEE"]
        )
        notice_mails.queue_refund(session, refund, by)  # the customer hears of it, once
        webhooks.queue_refund(session, refund, order, by)  # and the partner's systems
        currency = refund.payment.currency
        session.commit()
    metrics.REFUNDS.labels(by).inc()
    metrics.REFUNDED.labels(currency).inc(amount)
    arming.note_revoked(order.event_id, [t.id for t in tickets])  # armed gates learn it at once
    log.info(
        "order refunded",
        extra={"order_id": order_id, "amount": amount, "tickets": [t.id for t in tickets]},
    )
    return order


def _tickets_with_spots(session: Session, refund_id: int) -> list[Ticket]:
    """A refund's tickets and their spots, which revoking changes, loaded in one query rather
    than a spot at a time."""
    return list(
        session.scalars(
            select(Ticket)
            .where(Ticket.refund_id == refund_id)
            .options(joinedload(Ticket.spot))
            .order_by(Ticket.id)
        )
    )


def _drop(session: Session, order_id: int, refund_id: int) -> None:
    with busy_on_lock_failure(session):
        _locked_order(session, order_id, SYSTEM)
        refund = session.get(PaymentRefund, refund_id)
        if refund is not None and refund.status == RefundStatus.PENDING:
            refund.payment.drop_refund(refund)
        session.commit()


class RefundWindowClosed(Conflict):
    code = "refund_window_closed"


class TicketUsed(Conflict):
    code = "ticket_used"


class TicketTransferred(Conflict):
    code = "ticket_transferred"


@dataclass(frozen=True)
class UsedTicket:
    """A ticket of an order that was admitted at a gate, with its first entry."""

    ticket_id: int
    seat: str
    entered_at: dt.datetime
    gate: str
    timezone: str = local_time.DEFAULT_TIMEZONE  # the venue's

    def describe(self) -> str:
        entered = local_time.format_local(self.entered_at, self.timezone, current_locale())
        return gettext(
            "ticket %(id)s (%(seat)s), entered %(time)s at %(gate)s",
            id=self.ticket_id,
            seat=self.seat,
            time=entered,
            gate=self.gate,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.ticket_id,
            "seat": self.seat,
            "entered_at": self.entered_at.isoformat() + "Z",
            "gate": self.gate,
        }


def used_tickets(
    session: Session, order: Order, tickets: Iterable[Ticket] | None = None
) -> list[UsedTicket]:
    """Which of these tickets of ``order`` (by default its valid ones) were admitted at a gate,
    in id order: the database's entries and an armed event's not flushed from Redis yet."""
    tickets = sorted(order.live_tickets if tickets is None else tickets, key=lambda t: t.id)
    entries = first_entries(session, order.event_id, [t.id for t in tickets])
    return [
        UsedTicket(t.id, t.seat_label, entry.at, entry.gate, order.event.zone_name)
        for t in tickets
        if (entry := entries.get(t.id)) is not None
    ]


def cancel_by_customer(
    session: Session,
    gateway: PaymentGateway,
    customer_id: int,
    order_id: int,
    now: dt.datetime | None = None,
) -> Order:
    """A customer cancels their own paid order for a full refund, while the event's refund
    window is open and none of its tickets was used at a gate (TicketUsed naming them: the
    whole order or nothing, as the customer refunds no single ticket). Another customer's order
    does not exist for them (NotFound)."""
    now = now or utcnow()
    order = session.get(Order, order_id)
    if order is None or order.customer_id != customer_id:
        raise NotFound(gettext("Order not found."))
    if order.status not in (OrderStatus.PAID, OrderStatus.REFUNDED):
        raise Conflict(
            gettext(
                "Order %(id)s is %(status)s: only a paid order is cancelled.",
                id=order.id,
                status=order.status,
            )
        )
    deadline = order.event.customer_cancel_deadline()
    if deadline is None:
        raise RefundWindowClosed(
            gettext("This event does not take cancellations: contact the organiser."), deadline=None
        )
    if now > deadline:
        raise RefundWindowClosed(
            gettext(
                "Cancellations closed on %(time)s.",
                time=local_time.format_local(deadline, order.event.zone_name, current_locale()),
            ),
            deadline=local_time.iso_local(deadline, order.event.zone_name),
        )
    # Used or handed-on tickets are refused in the claim, under the order's lock: a transfer
    # or a scan committed after a check here would otherwise be refunded with the rest.
    session.rollback()
    return refund_order(session, gateway, order_id, SYSTEM, by="customer", held_by=customer_id)


STALE_REFUND = dt.timedelta(minutes=2)


def finish_pending_refunds(session: Session, gateway: PaymentGateway, now: dt.datetime) -> int:
    """Finish refunds a crash left pending (the periodic reconcile task): each is asked of the
    processor again under its own key, so the card is refunded once. Returns how many."""
    stale = session.execute(
        select(PaymentRefund.id, Payment.order_id)
        .join(Payment, Payment.id == PaymentRefund.payment_id)
        .where(
            PaymentRefund.status == RefundStatus.PENDING,
            PaymentRefund.created_at < now - STALE_REFUND,
        )
    ).all()
    session.rollback()
    for refund_id, order_id in stale:
        try:
            _complete(session, gateway, order_id, refund_id)
        except DomainError as err:
            session.rollback()
            log.error("pending refund not finished: %s", err.message, extra={"order_id": order_id})
        except Exception:  # the processor down, say: the others are still tried, this one next run
            session.rollback()
            log.exception("pending refund not finished", extra={"order_id": order_id})
    return len(stale)


def _locked_order(session: Session, order_id: int, actor: Actor) -> Order:
    session.expire_all()  # read what others committed, not what this session remembers
    order = session.scalars(
        owned_query(Order, actor).where(Order.id == order_id).with_for_update(of=Order)
    ).first()
    if order is None:
        raise NotFound(gettext("Order not found."))
    return order


def _captured(order: Order) -> Payment:
    captured = [p for p in order.payments if p.status == PaymentStatus.CAPTURED]
    if len(captured) != 1:
        raise Conflict(
            gettext("Order %(id)s has no single captured payment to refund.", id=order.id)
        )
    return captured[0]


def record_chargeback(
    session: Session, payment_id: int, reason: str | None, now: dt.datetime
) -> Order:
    """The acquirer took a disputed payment back: as for a refund, the tickets are revoked, their
    spots return to sale (unless the event is cancelled) and the ledger reverses the sale, here
    as a chargeback. Runs in the caller's transaction (the reconciliation of the report that
    said so); Conflict when the payment is not the captured payment of a paid order. After a
    partial refund only the tickets still valid are revoked and only what was not refunded is
    reversed."""
    session.flush()  # _locked_order expires what the session holds
    order_id = session.scalar(select(Payment.order_id).where(Payment.id == payment_id))
    order = _locked_order(session, order_id, SYSTEM)
    if order.status != OrderStatus.PAID:
        raise Conflict(
            gettext(
                "Order %(id)s is %(status)s: only a paid order is charged back.",
                id=order.id,
                status=order.status,
            )
        )
    payment = _captured(order)
    if payment.id != payment_id:
        raise Conflict(
            gettext(
                "Payment %(payment_id)s is not the captured payment of order %(id)s.",
                payment_id=payment_id,
                id=order.id,
            )
        )
    if payment.pending_refunds:
        # The processor may be paying that refund right now: taking the chargeback too would
        # give the money back twice. Reconciliation flags the line for finance instead.
        raise Conflict(
            gettext(
                "Order %(id)s has a refund in progress: the chargeback needs finance's review.",
                id=order.id,
            )
        )
    order.refund(now, event_cancelled=order.event.status == EventStatus.CANCELLED)
    payment.mark_charged_back(now)
    ledger.post_chargeback(session, payment, reason=reason)
    revoked = [t.id for t in order.tickets if t.status == TicketStatus.REVOKED]
    arming.note_revoked_after_commit(session, order.event_id, revoked)
    log.info("order charged back", extra={"order_id": order.id, "payment_id": payment_id})
    return order


# A cancelled event's refund run not seen working for this long has stopped (its worker died
# and the redelivery was lost, its retry was lost, or it gave up): longer than the task waits
# between retries (at most 30 minutes, tasks/refunds.py).
REFUND_RUN_STALLED = dt.timedelta(hours=1)


def resend_lost(
    session: Session, now: dt.datetime, grace: dt.timedelta, *, batch: int = 500
) -> list[int]:
    """Send the refund task again for every cancelled event with orders still paid whose task
    was lost: sent (by the cancellation, or by this sweep) more than ``grace`` ago and not seen
    running since, or seen last more than REFUND_RUN_STALLED ago (stopped: a worker died and its
    redelivery was lost, or the task gave up). Returns their ids. An event whose run is under
    way or waiting for its retry is left alone, and so is one sent again less than ``grace`` ago,
    whoever else sweeps at the same time (its row locked, SKIP LOCKED). A run refunds only what
    is still paid, and each order once (``refund_order``), however many runs there are."""
    last_sent = func.coalesce(Event.refunds_sent_at, Event.cancelled_at)
    paid_left = (
        select(Order.id)
        .where(Order.event_id == Event.id, Order.status == OrderStatus.PAID)
        .exists()
    )
    lost = list(
        session.scalars(
            select(Event.id)
            .where(
                Event.status == EventStatus.CANCELLED,
                last_sent < now - grace,
                or_(
                    Event.refunds_seen_at.is_(None),
                    Event.refunds_seen_at < last_sent,
                    Event.refunds_seen_at < now - max(grace, REFUND_RUN_STALLED),
                ),
                paid_left,
            )
            .order_by(Event.id)
            .limit(batch)
            # FOR NO KEY UPDATE: the rows that refer to the event are not held up.
            .with_for_update(skip_locked=True, key_share=True)
        )
    )
    if lost:
        session.execute(
            update(Event)
            .where(any_of(Event.id, lost))
            .values(refunds_sent_at=now, updated_at=Event.updated_at)
            .execution_options(synchronize_session=False)
        )
        for event_id in lost:
            enqueue_again(session, "refunds.cancelled_event", event_id)
        log.warning("refund tasks of cancelled events sent again", extra={"event_ids": lost})
    session.commit()
    return lost


def _seen_running(session: Session, event_id: int) -> None:
    """Note that a refund run of the event is working (``resend_lost`` reads it), in a
    transaction of its own; not when another holds the event's row right now (SKIP LOCKED: the
    run never waits for it; at worst a sweep sends the task again, which costs a run that finds
    less to do, never a second refund)."""
    held = (
        select(Event.id)
        .where(Event.id == event_id)
        .with_for_update(skip_locked=True, key_share=True)
    )
    session.execute(
        update(Event)
        .where(Event.id.in_(held.scalar_subquery()))
        .values(refunds_seen_at=utcnow(), updated_at=Event.updated_at)
        .execution_options(synchronize_session=False)
    )
    session.commit()


class RefundsUnfinished(Exception):
    """Some orders of a cancelled event could not be refunded for a reason that may pass (the
    processor unreachable): the task is run again later, and refunds only what is still paid."""

    def __init__(self, event_id: int, order_ids: list[int]) -> None:
        super().__init__(event_id, order_ids)  # its arguments: Celery pickles it whole
        self.event_id, self.order_ids = event_id, order_ids

    def __str__(self) -> str:
        return f"event {self.event_id}: orders {self.order_ids} not refunded yet"


def refund_event_orders(
    session: Session, gateway: PaymentGateway, event_id: int, *, batch: int = 50
) -> int:
    """Refund every paid order of a (cancelled) event, a batch at a time. Each order is refunded
    in its own transaction and a refunded order is skipped, so an interrupted run resumes where
    it stopped and nothing is refunded twice. Returns how many orders this run refunded."""
    refunded = 0
    refused: list[int] = []
    unfinished: list[int] = []  # failed for a reason that may pass: the task runs again
    tried = 0  # orders are taken in id order, past the last one tried (a stadium's orders are
    # too many to name those tried in the query)
    while True:
        _seen_running(session, event_id)
        order_ids = session.scalars(
            select(Order.id)
            .where(
                Order.event_id == event_id,
                Order.status == OrderStatus.PAID,
                Order.id > tried,
            )
            .order_by(Order.id)
            .limit(batch)
        ).all()
        session.rollback()
        if not order_ids:
            if refused:
                log.error(
                    "orders of a cancelled event not refunded: the processor refused them",
                    extra={"event_id": event_id, "order_ids": refused},
                )
            if unfinished:
                raise RefundsUnfinished(event_id, unfinished)
            return refunded
        tried = order_ids[-1]
        for order_id in order_ids:
            try:
                refund_order(session, gateway, order_id, SYSTEM, by="event_cancelled")
            except RefundFailed:
                # A disputed charge, say: one refusal must not stop the others' refunds.
                session.rollback()
                refused.append(order_id)
                continue
            except Exception:  # the processor unreachable: the others go on, this one is retried
                session.rollback()
                log.exception(
                    "order of a cancelled event not refunded yet", extra={"order_id": order_id}
                )
                unfinished.append(order_id)
                continue
            refunded += 1
