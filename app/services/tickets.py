"""Named tickets and transfers (issue 19, point 3): a ticket's holder is named, renamed by the
ticket's owner, and the ticket handed to another customer by e-mail.

Rules (the event's, set by its partner): ``named_tickets`` makes the buyer name every ticket's
holder at checkout (purchase/checkout.py); ``transfers_allowed`` and ``transfers_until_hours``
(hours before the start) bound when the holder may change, by a new name or a transfer alike
(a rename is a transfer to someone without an account: letting one while refusing the other
would defeat a partner who forbids resale). Only a valid ticket of a paid order changes hands,
never one used at the gate (its entry in the database or, for an armed event, in Redis not
flushed yet: checkin/entries.py), nor one a refund is giving back right now.

A transfer reissues the ticket: its row becomes ``transferred`` (its code answers ``revoked``
at the gate, online, in Redis and in the offline manifest) and a new ticket for the same order
and spot gets a new signed code (a code is signed over the ticket's id, so a new code needs a
new id) and the recipient as its owner (``owner_id``). The order and its money stay the
buyer's: a refund goes back to the order's payment and revokes whichever ticket stands for the
spot then. The recipient is an existing customer with that e-mail (any case): a login-less
customer would need sign-up to adopt it, and a mistyped address would take the ticket from its
owner with nobody able to use it.

Locks: the order's row, then the ticket's (a refund locks the order first too), so two
transfers of one ticket are one transfer and a refund claiming it waits or is waited for. The
old code is revoked in Redis *before* the ticket is checked unused, so a scan judged in Redis
either came first (its entry is seen: refused) or sees the revocation; a scan judged by the
database waits on the ticket's row (DbStore.is_revoked reads it FOR SHARE).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

import redis
from flask_babel import gettext
from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session, aliased, joinedload

from app.i18n import current_locale
from app.models import (
    Busy,
    Conflict,
    Customer,
    DomainError,
    Event,
    EventStatus,
    InvalidRequest,
    NotFound,
    Order,
    OrderStatus,
    Ticket,
    TicketStatus,
    local_time,
)
from app.models.base import utcnow
from app.models.codes import TicketClaim, sign_ticket
from app.models.order import printed_label
from app.services.after_commit import after_commit
from app.services.checkin import arming
from app.services.checkin.db_store import ticket_details
from app.services.checkin.entries import first_entries
from app.services.customers import EMAIL, MAX_EMAIL
from app.services.locking import busy_on_lock_failure
from app.services.mail import customer_mails
from app.services.refunds import TicketUsed  # the one refusal of a used ticket
from app.services.webhooks import outbox as webhooks

log = logging.getLogger(__name__)

MAX_HOLDER_NAME = 150
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class TransfersNotAllowed(Conflict):
    code = "transfers_not_allowed"


class TransfersClosed(Conflict):
    code = "transfers_closed"


class NotTransferable(Conflict):
    code = "not_transferable"


class UnknownRecipient(DomainError):
    code = "unknown_recipient"


def holder_name(raw: object, *, field: str = "holder_name") -> str:
    """A holder's name as typed: printable, 1 to 150 characters, spaces trimmed."""
    if not isinstance(raw, str):
        raise InvalidRequest(gettext("Give the holder's name."), field=field)
    name = " ".join(raw.split())
    if not name or _CONTROL.search(raw.replace("\n", " ").replace("\t", " ")):
        raise InvalidRequest(gettext("Give the holder's name."), field=field)
    if len(name) > MAX_HOLDER_NAME:
        raise InvalidRequest(gettext("The name is too long (150 characters at most)."), field=field)
    return name


def holder_names(
    raw: object, count: int, *, required: bool, default: str | None = None
) -> list[str] | None:
    """The holders' names a checkout gives, one per ticket in the order of the hold's spots;
    None when none is given and the event does not ask for them. Where the event does not ask
    for them, a name left blank is ``default`` (the buyer's)."""
    if raw is None or raw == []:
        if required:
            raise InvalidRequest(
                gettext("This event's tickets are named: give each ticket's holder."),
                field="holder_names",
            )
        return None
    if not isinstance(raw, list) or len(raw) != count:
        raise InvalidRequest(
            gettext("Give %(count)s holder names, one per ticket.", count=count),
            field="holder_names",
        )
    return [
        default
        if not required and default and isinstance(name, str) and not name.strip()
        else holder_name(name, field="holder_names")
        for name in raw
    ]


def recipient_email(raw: object) -> str:
    email = raw.strip().lower() if isinstance(raw, str) else ""
    if not EMAIL.match(email) or len(email) > MAX_EMAIL:
        raise InvalidRequest(gettext("Give a valid email address."), field="email")
    return email


def owned_clause(customer_id: int):  # noqa: ANN201 - a SQLAlchemy condition
    """Tickets ``customer_id`` holds: transferred to them, or bought by them and not handed on.
    Two index lookups (by owner; by the customer's orders), not one OR: PostgreSQL can read an
    OR of a column and a subquery only by reading every ticket."""
    held = aliased(Ticket)
    return Ticket.id.in_(
        union_all(
            select(held.id).where(held.owner_id == customer_id),
            select(held.id)
            .join(Order, Order.id == held.order_id)
            .where(Order.customer_id == customer_id, held.owner_id.is_(None)),
        )
    )


def owned_ticket(session: Session, customer_id: int, ticket_id: int) -> Ticket:
    """One ticket the customer holds now, valid or not; NotFound for anyone else's (a ticket
    the customer handed on is its new owner's)."""
    ticket = session.get(Ticket, ticket_id)
    if (
        ticket is None
        or ticket.status not in (TicketStatus.VALID, TicketStatus.REVOKED)
        or ticket.owner_customer_id != customer_id
    ):
        raise NotFound(gettext("Ticket not found."))
    return ticket


def held_tickets(session: Session, customer_id: int) -> list[Ticket]:
    """The valid tickets the customer holds (bought and not handed on, or transferred to them),
    soonest event first."""
    return list(
        session.scalars(
            select(Ticket)
            .join(Event, Event.id == Ticket.event_id)
            .where(owned_clause(customer_id), Ticket.status == TicketStatus.VALID)
            .options(joinedload(Ticket.event), joinedload(Ticket.section), joinedload(Ticket.spot))
            .order_by(Event.starts_at, Ticket.id)
        )
    )


def received_tickets(session: Session, customer_id: int) -> list[Ticket]:
    """The tickets other customers transferred to this one, still valid, soonest event first."""
    return list(
        session.scalars(
            select(Ticket)
            .join(Event, Event.id == Ticket.event_id)
            .where(Ticket.owner_id == customer_id, Ticket.status == TicketStatus.VALID)
            .join(Order, Order.id == Ticket.order_id)
            .where(Order.customer_id != customer_id)
            .options(joinedload(Ticket.event), joinedload(Ticket.section), joinedload(Ticket.spot))
            .order_by(Event.starts_at, Ticket.id)
        )
    )


@dataclass(frozen=True)
class Changeable:
    """Whether a ticket's holder may change now, and why not (for the pages)."""

    allowed: bool
    reason: str | None = None
    deadline: dt.datetime | None = None


def changeable(ticket: Ticket, now: dt.datetime | None = None) -> Changeable:
    """The event's rules for this ticket now (not whether it was used: that is looked up when
    it is asked for)."""
    now = now or utcnow()
    event = ticket.event
    deadline = event.transfer_deadline()
    if ticket.status != TicketStatus.VALID or event.status != EventStatus.PUBLISHED:
        return Changeable(False, gettext("This ticket is no longer valid."), deadline)
    if not event.transfers_allowed:
        return Changeable(
            False, gettext("The organiser does not allow this event's tickets to change hands.")
        )
    if now > deadline:
        return Changeable(
            False,
            gettext(
                "Tickets changed hands until %(time)s.",
                time=local_time.format_local(deadline, event.zone_name, current_locale()),
            ),
            deadline,
        )
    return Changeable(True, None, deadline)


def _locked(session: Session, customer_id: int, ticket_id: int) -> Ticket:
    """The customer's ticket, its order's row and then its own locked (a refund locks the
    order first too); NotFound for anyone else's."""
    session.expire_all()  # what others committed, not what this session remembers
    order_id = session.scalar(select(Ticket.order_id).where(Ticket.id == ticket_id))
    if order_id is None:
        raise NotFound(gettext("Ticket not found."))
    with busy_on_lock_failure(session):
        session.scalar(select(Order.id).where(Order.id == order_id).with_for_update())
        ticket = session.get(Ticket, ticket_id, with_for_update=True, populate_existing=True)
    if ticket is None or ticket.owner_customer_id != customer_id:
        raise NotFound(gettext("Ticket not found."))
    return ticket


def _require_changeable(ticket: Ticket, now: dt.datetime) -> None:
    if ticket.status == TicketStatus.TRANSFERRED:
        raise NotTransferable(gettext("This ticket was transferred already."))
    if ticket.status != TicketStatus.VALID or ticket.order.status != OrderStatus.PAID:
        raise NotTransferable(gettext("This ticket is no longer valid."))
    if ticket.refund_id is not None:
        raise NotTransferable(gettext("This ticket is being refunded."))
    rule = changeable(ticket, now)
    if not rule.allowed:
        if rule.deadline is not None and ticket.event.transfers_allowed and now > rule.deadline:
            raise TransfersClosed(
                rule.reason or "",
                deadline=local_time.iso_local(rule.deadline, ticket.event.zone_name),
            )
        if not ticket.event.transfers_allowed:
            raise TransfersNotAllowed(rule.reason or "")
        raise NotTransferable(rule.reason or "")


def _require_unused(session: Session, ticket: Ticket) -> None:
    used = first_entries(session, ticket.event_id, [ticket.id], strict=True).get(ticket.id)
    if used is not None:
        raise TicketUsed(
            gettext(
                "This ticket was used at the gate (%(time)s at %(gate)s): it no longer changes "
                "hands.",
                time=local_time.format_local(used.at, ticket.event.zone_name, current_locale()),
                gate=used.gate,
            )
        )


def rename(
    session: Session, customer_id: int, ticket_id: int, name: object, now: dt.datetime | None = None
) -> Ticket:
    """The ticket's owner names its holder: the same code (it carries no name), the gates show
    the new name at once."""
    new_name = holder_name(name)
    now = now or utcnow()
    ticket = _locked(session, customer_id, ticket_id)
    _require_changeable(ticket, now)
    try:
        _require_unused(session, ticket)
    except redis.RedisError as exc:
        session.rollback()
        raise Busy(gettext("The gates cannot be reached right now: try again.")) from exc
    ticket.holder_name = new_name
    session.flush()
    details = {ticket.id: ticket_details(session, ticket.id)}
    event_id = ticket.event_id
    after_commit(session, lambda: arming.note_ticket_details(event_id, details))
    session.commit()
    return ticket


def transfer(
    session: Session,
    customer_id: int,
    ticket_id: int,
    email: object,
    now: dt.datetime | None = None,
) -> Ticket:
    """Hand the ticket to the customer with this e-mail: its code is revoked and a new ticket
    (same order and spot, a new code, the recipient as owner and holder) is issued. Returns
    the new ticket. The recipient gets it by e-mail (held until their address is confirmed,
    as an order's tickets are) and the sender a notice."""
    address = recipient_email(email)
    now = now or utcnow()
    ticket = _locked(session, customer_id, ticket_id)
    _require_changeable(ticket, now)
    recipient = session.scalar(select(Customer).where(func.lower(Customer.email) == address))
    if recipient is None:
        raise UnknownRecipient(
            gettext("No customer has this e-mail: ask them to sign up first, then transfer again."),
            field="email",
        )
    if recipient.id == customer_id:
        raise InvalidRequest(gettext("This ticket is yours already."), field="email")
    event = ticket.event
    Ticket.TRANSFER.apply(ticket, f"Ticket {ticket.id}", revoked_at=now)
    session.flush()  # the old ticket stops being valid before its successor is (one per spot)
    successor = Ticket(
        order_id=ticket.order_id,
        event_id=ticket.event_id,
        section_id=ticket.section_id,
        spot_id=ticket.spot_id,
        price_cents=ticket.price_cents,
        currency=ticket.currency,
        ticket_type_id=ticket.ticket_type_id,
        promo_code_id=ticket.promo_code_id,  # still a use of the code
        discount_cents=ticket.discount_cents,
        status=TicketStatus.VALID.value,
        holder_name=recipient.name,
        owner_id=recipient.id,
        issued_at=now,
    )
    session.add(successor)
    session.flush()
    kind = ticket.ticket_type.name if ticket.ticket_type is not None else None
    label = printed_label(ticket.section.name, ticket.spot.label, kind)
    successor.code = sign_ticket(event.signing_key, TicketClaim(event.id, successor.id, label))
    ticket.replaced_by_id = successor.id
    try:
        # The gates first: from now on Redis refuses the old code; then no scan came before.
        arming.revoke_before_commit(event.id, [ticket.id])
    except redis.RedisError as exc:
        session.rollback()
        raise Busy(gettext("The gates cannot be reached right now: try again.")) from exc
    try:
        _require_unused(session, ticket)
        customer_mails.queue_ticket_transfer(session, ticket, successor)
        _queue_webhook(session, ticket, successor, now)
        session.flush()
        details = {successor.id: ticket_details(session, successor.id)}
    except BaseException as exc:
        session.rollback()
        arming.unrevoke(event.id, [ticket.id])
        if isinstance(exc, redis.RedisError):
            raise Busy(gettext("The gates cannot be reached right now: try again.")) from exc
        raise
    event_id, old_id, new_id = event.id, ticket.id, successor.id
    try:
        session.commit()
    except BaseException as exc:
        # A COMMIT cut short may have committed all the same: the old code is given back to
        # Redis's gates only if the database says the old ticket is still valid.
        session.rollback()
        outcome = _transfer_outcome(session, old_id, new_id)
        if outcome == "not_done":
            arming.unrevoke(event_id, [old_id])
            raise
        if outcome == "unknown" or not isinstance(exc, Exception):
            arming.note_revoked(event_id, [old_id])
            log.error(
                "transfer's commit failed, its outcome unknown: old code kept revoked",
                extra={"ticket_id": old_id, "new_ticket_id": new_id},
            )
            raise
        log.warning(
            "transfer's commit raised after committing", extra={"ticket_id": old_id}, exc_info=True
        )
    arming.note_revoked(event_id, [old_id])  # an arming read before the commit learns it too
    arming.note_ticket_details(event_id, details)
    log.info(
        "ticket transferred",
        extra={"ticket_id": old_id, "new_ticket_id": new_id, "to": recipient.id},
    )
    return session.get(Ticket, new_id) or successor


def _transfer_outcome(session: Session, old_id: int, new_id: int) -> str:
    """After a failed commit, what the database holds, read in a new transaction: "done" (the
    old ticket was replaced by ``new_id``), "not_done" (it is still valid) or "unknown" (the
    database cannot be read, or another change replaced it)."""
    try:
        row = session.execute(
            select(Ticket.status, Ticket.replaced_by_id).where(Ticket.id == old_id)
        ).first()
        session.rollback()
    except Exception:  # noqa: BLE001 - the database away: nothing is known
        session.rollback()
        log.exception("could not read a transfer's outcome", extra={"ticket_id": old_id})
        return "unknown"
    if row is None:
        return "unknown"
    if row.status == TicketStatus.VALID:
        return "not_done"
    if row.status == TicketStatus.TRANSFERRED and row.replaced_by_id == new_id:
        return "done"
    return "unknown"


def _queue_webhook(session: Session, old: Ticket, new: Ticket, now: dt.datetime) -> None:
    """The partner's ticket.transferred deliveries, in the transfer's transaction (each
    transfer is one delivery, named by the new ticket; sent after the commit)."""
    webhooks.queue_ticket_transferred(
        session, new, transfer=str(new.id), at=now, previous_ticket_id=old.id
    )
