"""The waiting list's offer (services/waitlist.py): spots came back and are on hold for the
first in line until a deadline, said in the event's local time, with the link to the event's
page where the hold shows and is paid. Written in the offer's transaction; an offer already
ended when the mail's turn comes (paid, released, expired) is dropped, not sent."""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask_babel import gettext
from sqlalchemy.orm import Session

from app.models import Hold, WaitlistEntry
from app.models.base import utcnow
from app.services.mail.messages import Gone, Message, render_pair, renderer

WAITLIST_OFFER = "waitlist_offer"


@renderer(WAITLIST_OFFER)
def waitlist_offer_mail(session: Session, params: dict[str, Any]) -> Message:
    entry = session.get(WaitlistEntry, params["entry_id"])
    hold = session.get(Hold, params["hold_id"])
    if entry is None or hold is None:
        raise Gone(f"waiting list offer {params} no longer exists")
    if not hold.is_live(utcnow()):
        raise Gone(f"the offer of hold {hold.id} has ended ({hold.status})")
    event_ = hold.event
    spots = hold.spots
    subject = gettext("Spots for you: %(event)s", event=event_.name)
    return render_pair(
        WAITLIST_OFFER,
        subject,
        event=event_,
        customer=entry.customer,
        spots=spots,
        total_cents=sum(s.held_price_cents or 0 for s in spots),
        deadline=hold.expires_at,
        event_url=url_for("shop.event", event_id=event_.id, _external=True),
    )
