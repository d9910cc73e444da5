"""Money as integer cents: amounts typed by people read exactly, and shown without a float.

Typed amounts (``parse_decimal``) take either decimal mark: "150,00" and "150.00", "1.234,56"
and "1,234.56" all read; what could mean two amounts ("1.234": one thousand two hundred and
thirty-four, or one and a fraction?) is refused with the field named. Amounts are shown
(``format_money``) in the reader's locale through Babel: "R$ 1.234,56" in pt_BR (the space a
no-break space, U+00A0, that keeps the symbol with its number), "R$1,234.56" in English.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal

from babel.numbers import format_currency, format_decimal
from flask_babel import gettext

from app.i18n import current_locale
from app.models.errors import DomainError

# Spaces people type or paste around and inside a number (no-break ones from a page too).
_SPACES = re.compile(r"[\s\u00a0\u202f]+")
# An optional sign and the real's symbol as the site shows it ("-R$ 5,00", "R$ -5,00"), then
# digits and marks, ending with a digit (",50" is half a unit).
_TYPED = re.compile(r"(-?)(?:R\$)?(-?)(\d(?:[\d.,]*\d)?|[.,]\d+)")
# Thousands grouping: 1 to 3 digits (not a lone 0), then groups of exactly 3.
_GROUPED = re.compile(r"(?!0[.,])\d{1,3}(?:[.,]\d{3})+")


class AmountError(DomainError):
    """A typed number could not be read (raised at the field it was typed in)."""


class AmbiguousAmount(AmountError):
    """A typed number that could mean two amounts, or whose marks are misplaced: the message
    says how to write it."""


def parse_decimal(value: str | Decimal | int | None, *, field: str, example: str) -> Decimal:
    """A number typed by a person, with a comma or a point as the decimal mark.

    "150" "150,00" "150.00" "7,5" "1.234,56" "1,234.56" "1.234.567" "R$ 1.234,56" read;
    "1.234" and "1,234" (a grouping or three decimals?) are ambiguous and refused, as are
    groupings that are not of three digits ("1.23,45"), two decimal marks, letters, exponents,
    NaN and infinity. Decimals and integers pass as they are; a float is never money."""
    if isinstance(value, float):
        raise TypeError("money is never a float")
    if isinstance(value, bool):
        raise AmountError(
            gettext("Give a number such as %(example)s.", example=example), field=field
        )
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise AmountError(
                gettext("Give a number such as %(example)s.", example=example), field=field
            )
        return value
    typed = _TYPED.fullmatch(_SPACES.sub("", value or ""))
    if typed is None or (typed[1] and typed[2]):
        raise AmountError(
            gettext("Give a number such as %(example)s.", example=example), field=field
        )
    sign, body = typed[1] or typed[2], typed[3]
    badly_grouped = AmbiguousAmount(
        gettext(
            "Write the number as %(example)s: groups of three digits and one decimal mark.",
            example=example,
        ),
        field=field,
    )
    marks = {mark: body.count(mark) for mark in ".," if mark in body}
    if not marks:
        return Decimal(sign + body)
    if len(marks) == 2:
        # Both marks: the last one is the decimal mark, the other one groups thousands.
        decimal_mark = body[max(body.rfind("."), body.rfind(","))]
        whole, fraction = body.rsplit(decimal_mark, 1)
        if decimal_mark in whole or not _GROUPED.fullmatch(whole):
            raise badly_grouped
        return Decimal(f"{sign}{_ungroup(whole)}.{fraction}")
    ((mark, count),) = marks.items()
    if count > 1:  # "1.234.567": only a grouping has the same mark twice
        if not _GROUPED.fullmatch(body):
            raise badly_grouped
        return Decimal(sign + _ungroup(body))
    whole, fraction = body.split(mark)
    if _GROUPED.fullmatch(body):
        raise AmbiguousAmount(
            gettext(
                '"%(typed)s" is ambiguous: write %(whole)s for the whole number, or give the'
                " decimals as %(example)s.",
                typed=value.strip(),
                whole=f"{sign}{whole}{fraction}",
                example=example,
            ),
            field=field,
        )
    return Decimal(f"{sign}{whole or 0}.{fraction}")


def _ungroup(number: str) -> str:
    return number.replace(".", "").replace(",", "")


# Whole sentences per amount (a translation cannot agree with a noun slotted in).
_NOUN_MESSAGES = {
    "price": (
        lambda: gettext("Give a price."),
        lambda: gettext("The price cannot be negative."),
        lambda: gettext("The price has at most two decimal places."),
    ),
    "fee per ticket": (
        lambda: gettext("Give a fee per ticket."),
        lambda: gettext("The fee per ticket cannot be negative."),
        lambda: gettext("The fee per ticket has at most two decimal places."),
    ),
}


def cents_from_amount(value: Decimal | str | int | None, *, field: str, noun: str = "price") -> int:
    """'150,50', '150.50' or Decimal('150.5') -> 15050 exactly; refuses negatives, fractions of
    a cent and floats (the messages name the amount: "The price ...", "The fee per ticket ...")."""
    if value is None or value == "":
        raise DomainError(_NOUN_MESSAGES[noun][0](), field=field)
    amount = parse_decimal(value, field=field, example="150,00")
    if amount < 0:
        raise DomainError(_NOUN_MESSAGES[noun][1](), field=field)
    cents = amount.scaleb(2)
    if cents != cents.to_integral_value():
        raise DomainError(_NOUN_MESSAGES[noun][2](), field=field)
    return int(cents)


def amount_from_cents(cents: int) -> Decimal:
    """15050 -> Decimal('150.50'), exactly (for forms and spreadsheet cells)."""
    return Decimal(int(cents)).scaleb(-2)


def format_money(cents: int, currency: str, locale: str | None = None) -> str:
    """12345, 'BRL' -> 'R$ 123,45' in pt_BR, 'R$123.45' in English (the reader's locale unless
    one is given); exact, from integer cents. Always two decimal places: every amount is kept in
    hundredths of its currency."""
    if not currency:
        return format_amount(cents, locale)
    return _money_text(int(cents), currency, str(locale or current_locale()))


@functools.lru_cache(maxsize=4096)
def _money_text(cents: int, currency: str, locale: str) -> str:
    """Babel's text for an amount, kept: an order's page and answer repeat a few prices, and
    Babel reads its pattern anew each time (a tenth of an order's JSON)."""
    return format_currency(amount_from_cents(cents), currency, locale=locale, currency_digits=False)


def format_amount(cents: int, locale: str | None = None) -> str:
    """The number alone, for a form or a figure without a currency: 123456 -> '1.234,56' in
    pt_BR, '1,234.56' in English (parse_decimal reads both back)."""
    return format_number(amount_from_cents(cents), locale, pattern="#,##0.00")


def format_number(
    value: Decimal | int, locale: str | None = None, *, pattern: str = "#,##0.##"
) -> str:
    """A number such as a percentage as the reader writes it, to two decimal places at most:
    Decimal('7.50') -> '7,5' in pt_BR, '7.5' in English; Decimal('10.00') -> '10'."""
    return format_decimal(value, pattern, locale=locale or current_locale())


class PricedInCents:
    """A model with a ``price_cents`` column that forms edit as an amount (``price_amount``,
    "150,00") and lists show formatted (``price``) in its ``price_currency``."""

    price_cents: int | None

    @property
    def price_currency(self) -> str:
        raise NotImplementedError

    @property
    def price_amount(self) -> Decimal | None:
        """The price in currency units, for forms (storage stays in integer cents)."""
        return None if self.price_cents is None else Decimal(self.price_cents).scaleb(-2)

    @price_amount.setter
    def price_amount(self, value: Decimal | None) -> None:
        self.price_cents = cents_from_amount(value, field="price_amount")

    @property
    def price(self) -> str:
        return format_money(self.price_cents or 0, self.price_currency)
