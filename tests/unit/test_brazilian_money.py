"""Brazilian money and numbers: amounts read "R$ 1.234,56" in pt_BR and "R$1,234.56" in English,
dates "26/12/2026 21:00"; typed amounts take a comma or a point as the decimal mark, and what
could mean two amounts is refused at its field. The reader's locale is decided in one place."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from flask import Flask, g

from app.config import ConfigError, load_config
from app.i18n import current_locale, format_datetime
from app.models import DomainError, Partner, money
from app.models.money import (
    AmountError,
    cents_from_amount,
    format_amount,
    format_money,
    format_number,
    parse_decimal,
)

NBSP = "\u00a0"  # CLDR keeps the symbol with its number: "R$" never ends a line alone


@pytest.mark.parametrize(
    ("cents", "currency", "pt_br", "english"),
    [
        (123456, "BRL", f"R${NBSP}1.234,56", "R$1,234.56"),
        (8000, "BRL", f"R${NBSP}80,00", "R$80.00"),
        (5, "BRL", f"R${NBSP}0,05", "R$0.05"),
        (-5, "BRL", f"-R${NBSP}0,05", "-R$0.05"),
        (123456789012, "BRL", f"R${NBSP}1.234.567.890,12", "R$1,234,567,890.12"),
        (150, "USD", f"US${NBSP}1,50", "$1.50"),
        # every amount is kept in hundredths, whatever the currency's usual digits
        (12345, "JPY", f"JP¥{NBSP}123,45", "¥123.45"),
    ],
)
def test_money_reads_as_brazilians_and_english_readers_write_it(cents, currency, pt_br, english):
    assert format_money(cents, currency, "pt_BR") == pt_br
    assert format_money(cents, currency, "en") == english


def test_money_is_formatted_from_integer_cents_exactly():
    # 2**53 + 1 cents is no float: a float on the way would end in ,92 or ,00
    assert format_money(2**53 + 1, "BRL", "pt_BR") == f"R${NBSP}90.071.992.547.409,93"
    assert format_amount(2**53 + 1, "en") == "90,071,992,547,409.93"


def test_an_amount_read_again_is_not_formatted_again(monkeypatch):
    """Babel formats each amount once per currency and locale (a page repeats a few prices)."""
    formatted = []
    real = money.format_currency

    def counted(*args, **kwargs):
        formatted.append(kwargs["locale"])
        return real(*args, **kwargs)

    monkeypatch.setattr(money, "format_currency", counted)
    money._money_text.cache_clear()
    texts = [format_money(123456, "BRL", locale) for locale in ("pt_BR", "en", "pt_BR", "en")]
    assert texts == [f"R${NBSP}1.234,56", "R$1,234.56"] * 2
    assert formatted == ["pt_BR", "en"]


def test_numbers_without_a_currency():
    assert format_amount(123456, "pt_BR") == "1.234,56"
    assert format_amount(50, "en") == "0.50"
    assert format_number(Decimal("7.50"), "pt_BR") == "7,5"
    assert format_number(Decimal("12.25"), "en") == "12.25"
    assert format_number(Decimal("10.00"), "pt_BR") == "10"


def test_dates_read_day_first_in_pt_br():
    moment = dt.datetime(2026, 12, 26, 21, 0)
    assert format_datetime(moment, "pt_BR") == "26/12/2026 21:00"
    assert format_datetime(moment, "en") == "12/26/2026, 9:00 PM"
    assert format_datetime(None, "pt_BR") == ""


# -- typed amounts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("150", "150"),
        ("150,00", "150.00"),
        ("150.00", "150.00"),
        ("150,5", "150.5"),
        ("0,50", "0.50"),
        (",50", "0.50"),
        ("7,5", "7.5"),
        ("1.234,56", "1234.56"),
        ("1,234.56", "1234.56"),
        ("12.345,6", "12345.6"),
        ("1.234.567,89", "1234567.89"),
        ("1,234,567.89", "1234567.89"),
        ("1.234.567", "1234567"),  # the same mark twice only groups
        ("1234,56", "1234.56"),
        ("1234.567", "1234.567"),  # four digits before it: a decimal mark (cents refuse it)
        ("0,123", "0.123"),
        (" R$ 1.234,56 ", "1234.56"),  # pasted from a page, no-break space and all
        (f"R${NBSP}80,00", "80.00"),
        ("-R$ 5,00", "-5.00"),
        ("R$ -5", "-5"),
    ],
)
def test_an_amount_reads_with_a_comma_or_a_point(typed, read):
    assert parse_decimal(typed, field="price", example="150,00") == Decimal(read)


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("1.234", '"1.234" is ambiguous: write 1234 for the whole number'),
        ("1,234", '"1,234" is ambiguous: write 1234 for the whole number'),
        ("123,456", '"123,456" is ambiguous'),
        ("1.23,45", "groups of three digits"),
        ("1,2.3", "groups of three digits"),
        ("1.234.56", "groups of three digits"),
        ("1,234,5.6", "groups of three digits"),
        ("1.234,5,6", "groups of three digits"),
        ("", "Give a number such as 150,00."),
        ("   ", "Give a number such as 150,00."),
        ("abc", "Give a number such as 150,00."),
        ("12a", "Give a number such as 150,00."),
        ("1e5", "Give a number such as 150,00."),
        ("NaN", "Give a number such as 150,00."),
        ("Infinity", "Give a number such as 150,00."),
        ("12,", "Give a number such as 150,00."),
        ("--5", "Give a number such as 150,00."),
        ("-R$-5", "Give a number such as 150,00."),
        ("R$", "Give a number such as 150,00."),
        ("1_000", "Give a number such as 150,00."),
    ],
)
def test_an_unreadable_or_ambiguous_amount_is_refused_at_its_field(typed, says):
    with pytest.raises(AmountError) as err:
        parse_decimal(typed, field="price_amount", example="150,00")
    assert says in err.value.message
    assert err.value.field == "price_amount"


@pytest.mark.parametrize(
    ("typed", "cents"),
    [("150,00", 15000), ("150.00", 15000), ("1.234,56", 123456), ("1,234.56", 123456),
     ("0,01", 1), (Decimal("150.5"), 15050), (3, 300)],
)  # fmt: skip
def test_a_typed_price_becomes_exact_cents(typed, cents):
    assert cents_from_amount(typed, field="price_amount") == cents


@pytest.mark.parametrize(
    ("typed", "says"),
    [("-1,00", "cannot be negative"), ("1,505", "ambiguous"), ("1234,505", "two decimal places"),
     ("0,001", "two decimal places"), ("", "Give a price."), (None, "Give a price."),
     (Decimal("NaN"), "Give a number")],
)  # fmt: skip
def test_a_bad_price_names_its_field(typed, says):
    with pytest.raises(DomainError) as err:
        cents_from_amount(typed, field="price_amount")
    assert says in err.value.message and err.value.field == "price_amount"


def test_a_float_is_never_money():
    with pytest.raises(TypeError):
        parse_decimal(1.5, field="price", example="150,00")


def test_the_fixed_fee_is_typed_as_money_and_kept_in_cents():
    partner = Partner(name="x", fee_percent=Decimal("7.5"))
    partner.fee_fixed_amount = "0,50"
    assert partner.fee_fixed_cents == 50 and partner.fee_fixed_amount == Decimal("0.50")
    with pytest.raises(DomainError) as err:
        partner.fee_fixed_amount = "0,505"
    assert err.value.field == "fee_fixed_amount"


def test_a_fee_percentage_has_at_most_two_decimals():
    partner = Partner(name="x", fee_percent=Decimal("7.555"), fee_fixed_cents=0)
    with pytest.raises(DomainError) as err:
        partner.validate_fees()
    assert err.value.field == "fee_percent"


# -- whose locale --------------------------------------------------------------------------------


@pytest.fixture
def flask_app():
    app = Flask(__name__)
    app.config["DEFAULT_LOCALE"] = "pt_BR"
    return app


def test_outside_any_app_the_default_is_pt_br():
    assert current_locale() == "pt_BR"
    assert format_money(8000, "BRL") == f"R${NBSP}80,00"


def test_the_configured_default_applies_outside_requests(flask_app):
    flask_app.config["DEFAULT_LOCALE"] = "en"
    with flask_app.app_context():
        assert current_locale() == "en"
        assert format_money(8000, "BRL") == "R$80.00"


@pytest.mark.parametrize(
    ("accept", "locale"),
    [(None, "pt_BR"), ("pt-BR,pt;q=0.9", "pt_BR"), ("en-US,en;q=0.9", "en"),
     ("fr-FR", "pt_BR"), ("en-US,en;q=0.9,pt-BR;q=0.8", "en"), ("pt-BR,en;q=0.5", "pt_BR")],
)  # fmt: skip
def test_a_request_reads_in_the_language_it_accepts_else_the_default(flask_app, accept, locale):
    headers = {"Accept-Language": accept} if accept else {}
    with flask_app.test_request_context("/", headers=headers):
        assert current_locale() == locale


def test_a_language_chosen_for_the_request_comes_first(flask_app):
    with flask_app.test_request_context("/", headers={"Accept-Language": "pt-BR"}):
        g.locale = "en"
        assert current_locale() == "en"
        assert format_money(123456, "BRL") == "R$1,234.56"


def test_the_default_locale_is_configured_and_checked():
    assert load_config({"APP_ENV": "test"})["DEFAULT_LOCALE"] == "pt_BR"
    assert load_config({"APP_ENV": "test", "DEFAULT_LOCALE": "en"})["DEFAULT_LOCALE"] == "en"
    with pytest.raises(ConfigError, match="DEFAULT_LOCALE"):
        load_config({"APP_ENV": "test", "DEFAULT_LOCALE": "fr_FR"})
