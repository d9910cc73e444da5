"""Promo codes' arithmetic and rules, without a database: what a ticket costs with a code, when a
code may be used, what a partner may save, and the codes a batch draws."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

import pytest

from app.models import DomainError, PromoCode
from app.models.promo import (
    CODE_ALPHABET,
    discounted_price,
    normalized,
    random_code,
    refusal,
)

NOW = dt.datetime(2027, 3, 1, 12, 0)


@pytest.mark.parametrize(
    ("gross", "percent", "price"),
    [
        (10000, 20, 8000),
        (3333, 15, 2833),  # 499.95 off rounds half up to 500
        (3330, 15, 2830),  # 499.50 off rounds half up to 500
        (3329, 15, 2830),  # 499.35 off rounds to 499
        (1, 50, 0),  # half a cent off rounds up: the hold refuses a free ticket
        (0, 20, 0),
    ],
)
def test_a_percent_off_rounds_the_discount_half_up_to_the_cent(gross, percent, price):
    assert discounted_price("percent", percent, gross) == price


@pytest.mark.parametrize(
    ("gross", "off", "price"), [(10000, 2500, 7500), (2000, 2500, 0), (2500, 2500, 0)]
)
def test_an_amount_off_floors_at_zero(gross, off, price):
    assert discounted_price("amount_off", off, gross) == price


@pytest.mark.parametrize(("gross", "fixed", "price"), [(10000, 4990, 4990), (3000, 4990, 3000)])
def test_a_fixed_price_never_raises_a_price(gross, fixed, price):
    assert discounted_price("fixed_price", fixed, gross) == price


def _code(**fields):
    values = {"active": True, "event_id": None, "valid_from": None, "valid_until": None}
    return SimpleNamespace(**{**values, **fields})


def test_a_code_is_valid_from_its_start_until_before_its_end_for_its_events():
    start, end = NOW - dt.timedelta(hours=1), NOW + dt.timedelta(hours=1)
    assert refusal(_code(valid_from=start, valid_until=end, event_id=7), NOW, 7) is None
    assert refusal(_code(), NOW, 7) is None  # every event of its partner, no dates
    assert refusal(_code(valid_from=NOW), NOW, 7) is None  # from its first moment
    cases = {
        "not valid yet": _code(valid_from=NOW + dt.timedelta(seconds=1)),
        "expired": _code(valid_until=NOW),  # up to, not including, its end
        "not valid for this event": _code(event_id=8),
        "no longer valid": _code(active=False),
    }
    for words, code in cases.items():
        refused = refusal(code, NOW, 7)
        assert refused is not None and words in refused.message, words
        assert refused.field == "promo_code" and refused.status == 422


def _promo(**fields) -> PromoCode:
    values = {"code": "fans20", "kind": "percent", "value": 20, "partner_id": 1}
    return PromoCode(**{**values, **fields})


def test_codes_are_stored_upper_case_and_checked():
    code = _promo()
    code.check()
    assert code.code == "FANS20" and normalized("  fans20 ") == "FANS20"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"value": 100}, "value"),  # 100 % off: a free ticket is a courtesy
        ({"value": 0}, "value"),
        ({"kind": "amount_off", "value": 0}, "value"),
        ({"code": "two words"}, "code"),
        ({"code": ""}, "code"),
        ({"valid_from": NOW, "valid_until": NOW}, "valid_until"),
        ({"max_uses_per_customer": 0}, "max_uses_per_customer"),
    ],
)
def test_a_code_that_breaks_a_rule_is_refused_at_its_field(fields, field):
    with pytest.raises(DomainError) as refused:
        _promo(**fields).check()
    assert refused.value.field == field


def test_a_form_gives_a_percent_as_a_whole_number_and_an_amount_in_currency_units():
    percent = _promo(value=1)
    percent.value_amount = Decimal("15")
    percent.check()
    assert percent.value == 15
    amount = _promo(kind="amount_off", value=1)
    amount.value_amount = Decimal("25.50")
    amount.check()
    assert amount.value == 2550 and amount.value_amount == Decimal("25.50")
    fraction = _promo(value=1)
    fraction.value_amount = Decimal("12.5")
    with pytest.raises(DomainError) as refused:
        fraction.check()
    assert refused.value.field == "value"


def test_a_batch_code_is_its_prefix_and_eight_unambiguous_random_characters():
    drawn = {random_code("fans") for _ in range(200)}
    assert len(drawn) == 200
    for code in drawn:
        prefix, tail = code.split("-")
        assert prefix == "FANS" and len(tail) == 8 and set(tail) <= set(CODE_ALPHABET)
    assert not set("01IOL") & set(CODE_ALPHABET)
