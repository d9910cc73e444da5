"""Money as integer cents: amounts typed by people read exactly, and shown without a float."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from flask_babel import gettext

from app.models.errors import DomainError


def cents_from_amount(value: Decimal | str | int | None, *, field: str) -> int:
    """Decimal('150.5') -> 15050 exactly; refuses negatives, fractions of a cent and floats."""
    if value is None or value == "":
        raise DomainError(gettext("Give a price."), field=field)
    if isinstance(value, float):
        raise TypeError("money is never a float")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise DomainError(gettext("Give a price such as 150.00."), field=field) from None
    if not amount.is_finite() or amount < 0:
        raise DomainError(gettext("The price cannot be negative."), field=field)
    cents = amount.scaleb(2)
    if cents != cents.to_integral_value():
        raise DomainError(gettext("The price has at most two decimal places."), field=field)
    return int(cents)


def format_money(cents: int, currency: str) -> str:
    """12345, 'BRL' -> 'BRL 123.45' (integer arithmetic, no float)."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{currency} {sign}{whole:,}.{frac:02d}".strip()
