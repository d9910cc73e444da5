"""Promo codes in a hold: the code looked up and locked, its uses counted, each spot's discount
quoted, hidden (presale) sections and types unlocked (app/models/promo.py says what a code is).

A code with a limit in all (``max_uses``) has its row locked after the customer's and before
the ticket types' and the spots' (the one lock order of a hold; ``FOR NO KEY UPDATE``, so rows
that merely refer to the code do not wait for it) while its uses in force are counted: the
spots held with it by live holds (``held_until`` after now) and its valid tickets. A code
without one is only read, so its buyers do not queue on its row; uses per customer are counted
under the customer's lock. Two buyers of a code's last use are counted one after the other,
so ``max_uses`` is never passed. Nothing else locks the code: a hold that expires stops
counting when its time is over, a refunded ticket when it is revoked, and checkout,
confirmation and release lock holds and spots only.

Which rules were chosen where the issue left them open:
- an unknown code (or another partner's, or an inactive one) is 404 naming ``promo_code``; a
  code that is known but does not apply now (not yet valid, expired, another event, a spot of
  another section or type) is 422 ``promo_code_refused``; a code used up is 409
  ``promo_code_used_up`` with how many uses are ``left``;
- every ticket of the request gets the discount and counts as a use; a spot outside the code's
  section or type refuses the request, it is not silently left at full price;
- a discount never leaves a ticket at zero or at no more than the platform's fee on it (the
  partner would get nothing and the sale would not show in its statement).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask_babel import gettext
from sqlalchemy import Connection, Row, bindparam, select

from app.models import (
    Conflict,
    Event,
    NotFound,
    PromoCode,
    PromoCodeRefused,
)
from app.models.money import format_money
from app.models.partner import Partner, platform_fee_cents
from app.models.promo import discounted_price, normalized, refusal, uses_query
from app.services.purchase.ticket_types import Kind

_code, _event, _partner = PromoCode.__table__, Event.__table__, Partner.__table__


class PromoCodeUsedUp(Conflict):
    code = "promo_code_used_up"


@dataclass(frozen=True)
class Promo:
    """A code as a hold applies it."""

    id: int
    code: str
    kind: str
    value: int
    section_id: int | None
    ticket_type_id: int | None
    fee_percent: Decimal
    fee_fixed_cents: int
    currency: str

    def unlocks_section(self, section_id: int) -> bool:
        """Whether it opens this hidden (presale) section (a code for one of its types does)."""
        return self.section_id == section_id


_READ_CODE = (
    select(
        _code.c.id,
        _code.c.code,
        _code.c.kind,
        _code.c.value,
        _code.c.event_id,
        _code.c.section_id,
        _code.c.ticket_type_id,
        _code.c.valid_from,
        _code.c.valid_until,
        _code.c.max_uses,
        _code.c.max_uses_per_customer,
        _code.c.active,
        _partner.c.fee_percent,
        _partner.c.fee_fixed_cents,
        _event.c.currency,
    )
    .select_from(
        _code.join(_event, _event.c.partner_id == _code.c.partner_id).join(
            _partner, _partner.c.id == _event.c.partner_id
        )
    )
    .where(_event.c.id == bindparam("event_id"), _code.c.code == bindparam("promo_code"))
)
# Only a code with a limit in all is locked (its uses are counted one hold at a time); one
# without (a presale's "FANS") is read, so that its buyers do not wait for each other. Uses per
# customer are counted under the customer's lock, which the hold took first.
# FOR NO KEY UPDATE: holds of the code queue on it, while rows that merely refer to it (a spot
# held with it, a ticket checkout issues with it) take their key-share lock without waiting.
_LOCK_CODE = _READ_CODE.with_for_update(of=_code, key_share=True)
_USES, _USES_BY_CUSTOMER = uses_query(), uses_query(by_customer=True)


def asked_code(value: Any) -> str | None:
    """The code a request gives (None: none), normalized; a DomainError naming ``promo_code``
    for anything but text."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 100:
        raise PromoCodeRefused(gettext("promo_code must be a code (text)."), field="promo_code")
    return normalized(value) or None


def lock(conn: Connection, ids: dict[str, Any], wanted: int) -> Promo | None:
    """The code ``ids["promo_code"]`` names for the event's partner, locked, valid now for the
    event and with ``wanted`` uses left in all and for the customer (None when none is given)."""
    given = ids.get("promo_code")
    if not given:
        return None
    row = conn.execute(_READ_CODE, ids).first()
    if row is not None and row.max_uses is not None:
        row = conn.execute(_LOCK_CODE, ids).first()
    if row is None or not row.active:
        raise NotFound(gettext("Promo code not found."), field="promo_code")
    refused = refusal(row, ids["now"], ids["event_id"])
    if refused is not None:
        raise refused
    params = {"promo_id": row.id, "now": ids["now"], "customer_id": ids["customer_id"]}
    limits = (
        (row.max_uses, _USES),
        (row.max_uses_per_customer, _USES_BY_CUSTOMER),
    )
    for limit, counted in limits:
        if limit is None:
            continue
        left = max(limit - conn.execute(counted, params).scalar_one(), 0)
        if wanted > left:
            raise PromoCodeUsedUp(
                gettext(
                    "This promo code has %(left)s use(s) left for you: one per ticket.",
                    left=left,
                )
                if counted is _USES_BY_CUSTOMER
                else gettext(
                    "This promo code has %(left)s use(s) left: one per ticket.", left=left
                ),
                field="promo_code",
                left=left,
            )
    return Promo(
        row.id,
        row.code,
        row.kind,
        row.value,
        row.section_id,
        row.ticket_type_id,
        row.fee_percent,
        row.fee_fixed_cents,
        row.currency,
    )


@dataclass(frozen=True)
class Quote:
    """A held spot's type, the price the buyer pays, and the code's discount on it."""

    kind: Kind | None
    price_cents: int
    promo_code_id: int | None = None
    discount_cents: int = 0


def apply(
    spots: Sequence[Row], quoted: Sequence[tuple[Kind | None, int]], promo: Promo | None
) -> list[Quote]:
    """Each spot's quote with the code's discount (``quoted``: its type and price before it);
    PromoCodeRefused when a spot is outside the code's section or type, or the discount would
    leave a ticket at no more than the platform's fee."""
    if promo is None:
        return [Quote(kind, price) for kind, price in quoted]
    quotes = []
    for spot, (kind, gross) in zip(spots, quoted, strict=True):
        if (promo.section_id is not None and spot.section_id != promo.section_id) or (
            promo.ticket_type_id is not None and (kind is None or kind.id != promo.ticket_type_id)
        ):
            raise PromoCodeRefused(
                gettext(
                    "Promo code %(code)s is not valid for %(spot)s (another section or ticket "
                    "type).",
                    code=promo.code,
                    spot=spot.label,
                ),
                field="promo_code",
            )
        price = discounted_price(promo.kind, promo.value, gross)
        fee = platform_fee_cents(promo.fee_percent, promo.fee_fixed_cents, price, 1)
        if price < gross and price <= fee:
            raise PromoCodeRefused(
                gettext(
                    "Promo code %(code)s cannot be used for %(spot)s: it would leave the ticket "
                    "at %(price)s.",
                    code=promo.code,
                    spot=spot.label,
                    price=format_money(price, promo.currency),
                ),
                field="promo_code",
            )
        quotes.append(Quote(kind, price, promo.id, gross - price))
    return quotes


def require_unlocked(spots: Sequence[Row], promo: Promo | None) -> None:
    """A spot of a hidden (presale) section exists only for a code that unlocks its section."""
    if any(s.section_hidden and not (promo and promo.unlocks_section(s.section_id)) for s in spots):
        raise NotFound(gettext("Some of these spots do not exist in this event."), field="spot_ids")
