"""What partners do with promo codes (app/models/promo.py): create and change them within their
own events, generate a batch of single-use codes from one and export it as CSV; and how the
shop finds the code a customer typed on an event's page.

A batch copies its template's discount, targets and dates into ``count`` codes of one use each
(one per customer too), named ``PREFIX-`` and 8 characters drawn by ``secrets`` from an alphabet
without look-alikes; its ``batch`` is the prefix, by which it is exported again.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    DomainError,
    Event,
    EventSpot,
    Forbidden,
    NotFound,
    Partner,
    PromoCode,
    Ticket,
)
from app.models.base import utcnow
from app.models.local_time import local_naive
from app.models.promo import MAX_BATCH, normalized, random_code, refusal
from app.services.reports.files import spreadsheet_cell
from app.services.scoping import Actor, is_platform_staff, owned_query


def prepare_code(session: Session, code: PromoCode, actor: Actor | None) -> None:
    """Rules for a new code: its partner (the user's own, or the one platform staff chose, else
    its event's), its targets within that partner's events, its discount and limits."""
    if is_platform_staff(actor):
        if code.partner is None and code.partner_id is None:
            target = code.ticket_type or code.section or code.event
            if target is None:
                raise DomainError(gettext("Choose the partner."), field="partner")
            event = target if isinstance(target, Event) else (code.section or target.section).event
            code.partner_id = event.partner_id
    else:
        partner_id = getattr(actor, "partner_id", None)
        if partner_id is None:
            raise Forbidden(gettext("Your user belongs to no partner."))
        if code.partner is not None and code.partner.id != partner_id:
            raise NotFound(gettext("Partner not found."), field="partner")
        code.partner = session.get(Partner, partner_id)
    if code.partner is not None:
        code.partner_id = code.partner.id
    check_code(session, code)


def check_code(session: Session, code: PromoCode) -> None:
    """A code's rules, and no other of its partner's with the same text (any case)."""
    code.check()
    taken = session.scalar(
        select(PromoCode.id).where(
            PromoCode.partner_id == code.partner_id,
            PromoCode.code == normalized(code.code),
            PromoCode.id != (code.id or 0),
        )
    )
    if taken is not None:
        raise DomainError(
            gettext("You already have a code %(code)s.", code=code.code), field="code"
        )


def check_deletable(session: Session, code: PromoCode) -> None:
    """A code tickets were bought with, or spots are held with, stays (deactivate it instead:
    a hold keeps the discount it was quoted either way)."""
    used = (
        select(Ticket.id)
        .where(Ticket.promo_code_id == code.id)
        .union_all(select(EventSpot.id).where(EventSpot.held_promo_code_id == code.id))
    )
    if session.scalar(select(used.subquery()).limit(1)):
        raise DomainError(
            gettext("This code was used: it stays (deactivate it instead)."),
            field="active",
        )


def generate_batch(
    session: Session, actor: Actor | None, template_id: int, count: int, prefix: str
) -> list[PromoCode]:
    """``count`` single-use codes ``PREFIX-XXXXXXXX`` with the template's discount, targets and
    dates (the template seen through the actor's scope: another partner's is not found)."""
    template = session.scalars(
        owned_query(PromoCode, actor).where(PromoCode.id == template_id)
    ).first()
    if template is None:
        raise NotFound(gettext("Promo code not found."))
    if not 1 <= count <= MAX_BATCH:
        raise DomainError(
            gettext("Generate 1 to %(most)s codes at a time.", most=MAX_BATCH), field="count"
        )
    prefix = normalized(prefix)
    if not prefix or len(prefix) > 20 or not prefix.replace("-", "").replace("_", "").isalnum():
        raise DomainError(gettext("A prefix is 1 to 20 letters, digits, - or _."), field="prefix")
    codes: set[str] = set()
    while len(codes) < count:
        wanted = {random_code(prefix) for _ in range(count - len(codes))}
        taken = set(
            session.scalars(
                select(PromoCode.code).where(
                    PromoCode.partner_id == template.partner_id, PromoCode.code.in_(wanted)
                )
            )
        )
        codes |= wanted - taken
    made = [
        PromoCode(
            partner_id=template.partner_id,
            event_id=template.event_id,
            section_id=template.section_id,
            ticket_type_id=template.ticket_type_id,
            code=code,
            kind=template.kind,
            value=template.value,
            valid_from=template.valid_from,
            valid_until=template.valid_until,
            max_uses=1,
            max_uses_per_customer=1,
            active=True,
            batch=prefix,
        )
        for code in sorted(codes)
    ]
    session.add_all(made)
    session.commit()
    return made


def batch_codes(session: Session, actor: Actor | None, batch: str) -> list[PromoCode]:
    """The codes of a batch the actor may see, in code order."""
    return list(
        session.scalars(
            owned_query(PromoCode, actor)
            .where(PromoCode.batch == normalized(batch))
            .order_by(PromoCode.code)
        )
    )


CSV_COLUMNS = ("code", "discount", "event", "section", "ticket_type", "valid_from", "valid_until")


def codes_csv(codes: Sequence[PromoCode]) -> str:
    """Codes as CSV for the partner to hand out: each with its discount, what it is for and
    its dates in the venue's time ("" where open)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for code in codes:

        def when(moment: dt.datetime | None, code: PromoCode = code) -> str:
            local = local_naive(moment, code.timezone)
            return local.isoformat(sep=" ", timespec="minutes") if local else ""

        writer.writerow(
            [
                spreadsheet_cell(value)
                for value in (
                    code.code,
                    code.value_text,
                    code.event.name if code.event else "",
                    code.section.name if code.section else "",
                    code.ticket_type.name if code.ticket_type else "",
                    when(code.valid_from),
                    when(code.valid_until),
                )
            ]
        )
    return buffer.getvalue()


def code_for_event(
    session: Session, event: Event, text: str, now: dt.datetime | None = None
) -> PromoCode:
    """The code a customer typed on the event's page, if it may be used for it now; NotFound or
    PromoCodeRefused (naming ``promo_code``) otherwise. Its uses are counted when it is held."""
    found = session.scalars(
        select(PromoCode).where(
            PromoCode.partner_id == event.partner_id, PromoCode.code == normalized(text)
        )
    ).first()
    if found is None or not found.active:
        raise NotFound(gettext("Promo code not found."), field="promo_code")
    refused = refusal(found, now or utcnow(), event.id)
    if refused is not None:
        raise refused
    return found
