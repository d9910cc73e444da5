"""How the customer API shows events, holds, orders and waiting-room turns (JSON): the same
shapes for every route that answers them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.models import format_money, local_time
from app.models.base import utcnow
from app.services import customers, purchase, tickets, waiting_room, waitlist


def event_json(event: Any) -> dict[str, Any]:
    return {
        "id": event.id,
        "name": event.name,
        "description": event.description,
        "venue": event.venue,
        "city": event.city,
        "address": event.address,
        "category": event.category,
        # The venue's local time with its offset ("2026-12-26T21:00:00-03:00"), and its zone.
        "starts_at": local_time.iso_local(event.starts_at, event.timezone),
        "ends_at": local_time.iso_local(event.ends_at, event.timezone),
        "timezone": event.timezone,
        "image_url": event.image_url,
        "currency": event.currency,
        "status": event.status,
        "partner": event.partner.name,
    }


def hold_json(hold: purchase.summary.HoldSummary, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": hold.id,
        "event_id": hold.event_id,
        "status": hold.status,
        "expires_at": local_time.iso_utc(hold.expires_at),
        "seconds_left": hold.seconds_left(now),
        "spots": [
            {
                "id": spot.id,
                "label": spot.label,
                "section_id": spot.section_id,
                "section": spot.section,
                "gross_cents": spot.gross_cents,
                "discount_cents": spot.discount_cents,
                "price_cents": spot.price_cents,
                "ticket_type": spot.ticket_type,
                "promo_code": spot.promo_code,
            }
            for spot in hold.spots
        ],
        "gross_cents": hold.gross_cents,
        "discount_cents": hold.discount_cents,
        "total_cents": hold.total_cents,
    }


def order_json(record: customers.OrderRecord) -> dict[str, Any]:
    order = record.order
    return {
        "id": order.id,
        "event": {"id": order.event_id, "name": order.event_name},
        "status": order.status,
        "total_cents": order.total_cents,
        "total": format_money(order.total_cents, order.currency),
        "currency": order.currency,
        "created_at": local_time.iso_utc(order.created_at),
        "paid_at": local_time.iso_utc(order.paid_at),
        "cancel_reason": order.cancel_reason,
        "payments": [
            {
                "id": p.id,
                "status": p.status,
                "amount_cents": p.amount_cents,
                "refunded_cents": p.refunded_cents,
                "card_brand": p.card_brand,
                "card_last4": p.card_last4,
                "failure_reason": p.failure_reason,
            }
            for p in record.payments
        ],
        "tickets": [
            {
                "id": t.id,
                "status": t.status,
                "section": t.section_name,
                "spot": t.spot_label,
                "price_cents": t.price_cents,
                "discount_cents": t.discount_cents,
                "ticket_type": t.ticket_type,
                "holder_name": t.holder_name,
                "code": None if t.status == "transferred" else t.code,
                # Handed to another customer: theirs now (their code is not shown here).
                "transferred": t.transferred or t.status == "transferred",
            }
            for t in record.tickets
            if t.status != "void"
        ],
    }


def ticket_json(ticket: Any, customer_id: int) -> dict[str, Any]:
    """A ticket its holder sees (bought or transferred to them), with its code and whether its
    holder may change now."""
    event = ticket.event
    rule = tickets.changeable(ticket)
    return {
        "id": ticket.id,
        "status": ticket.status,
        "event": {
            "id": event.id,
            "name": event.name,
            "starts_at": local_time.iso_local(event.starts_at, event.timezone),
        },
        "order_id": ticket.order_id if ticket.order.customer_id == customer_id else None,
        "section": ticket.section.name,
        "spot": ticket.spot.label,
        "ticket_type": ticket.ticket_type.name if ticket.ticket_type else None,
        "holder_name": ticket.holder_name,
        "code": ticket.code if ticket.status == "valid" else None,
        "transferable": rule.allowed,
        "transfers_until": local_time.iso_local(rule.deadline, event.timezone)
        if rule.deadline
        else None,
    }


def turn_json(turn: waiting_room.Turn, now: dt.datetime) -> dict[str, Any]:
    return {
        "event_id": turn.event_id,
        "waiting_room": turn.status != waiting_room.OPEN,
        "status": turn.status,
        "admit_at": local_time.iso_utc(turn.admit_at),
        "turn_ends_at": local_time.iso_utc(turn.ends_at),
        "wait_ms": int(turn.wait(now).total_seconds() * 1000),
        "ahead": turn.ahead(now),
    }


def waitlist_json(place: waitlist.Place) -> dict[str, Any]:
    """A customer's waiting-list entry: where they stand (``position``, 1 = next, while
    waiting) and, once offered, the hold that keeps their spots until ``offer_expires_at``."""
    entry = place.entry
    return {
        "id": entry.id,
        "event_id": entry.event_id,
        "section_id": entry.section_id,
        "ticket_type_id": entry.ticket_type_id,
        "quantity": entry.quantity,
        "status": entry.status_at(utcnow()),
        "position": place.position,
        "created_at": local_time.iso_utc(entry.created_at),
        "offered_at": local_time.iso_utc(entry.offered_at),
        "offer_expires_at": local_time.iso_utc(entry.offer_expires_at),
        "hold_id": entry.hold_id,
    }
