from decimal import Decimal

import pytest

from app.config import ConfigError, load_config
from app.models import DomainError, Partner, format_money
from app.models.money import cents_from_amount
from app.services.events import seat_block_labels


def test_a_seat_block_covers_every_row_and_seat_in_order():
    labels = seat_block_labels("a", "c", 3)
    assert [label for _, _, label in labels] == [
        "A-1", "A-2", "A-3", "B-1", "B-2", "B-3", "C-1", "C-2", "C-3",
    ]  # fmt: skip
    assert labels[4] == ("B", 2, "B-2")


def test_a_prefix_goes_in_front_of_the_row():
    assert seat_block_labels("A", "A", 2, prefix="N") == [("NA", 1, "NA-1"), ("NA", 2, "NA-2")]


@pytest.mark.parametrize(
    ("first", "last", "seats", "field"),
    [("AA", "B", 2, "first_row"), ("A", "1", 2, "last_row"), ("C", "A", 2, "last_row"),
     ("A", "B", 0, "seats_per_row")],
)  # fmt: skip
def test_a_bad_seat_block_names_the_field_at_fault(first, last, seats, field):
    with pytest.raises(DomainError) as err:
        seat_block_labels(first, last, seats)
    assert err.value.field == field


def test_prices_convert_to_cents_exactly():
    assert cents_from_amount(Decimal("150.5"), field="p") == 15050
    assert cents_from_amount("0.10", field="p") == 10
    assert cents_from_amount(3, field="p") == 300


@pytest.mark.parametrize("bad", [Decimal("-1"), Decimal("1.001"), "abc", "NaN", None])
def test_bad_prices_are_refused(bad):
    with pytest.raises(DomainError):
        cents_from_amount(bad, field="price")


def test_money_is_never_a_float():
    with pytest.raises(TypeError):
        cents_from_amount(1.5, field="price")


def test_money_formats_from_integer_cents():
    assert format_money(123456, "BRL") == "R$\u00a01.234,56"  # pt_BR by default
    assert format_money(-5, "BRL", "en") == "-R$0.05"


def test_platform_fee_is_percent_half_up_plus_fixed_per_ticket_capped_at_gross():
    partner = Partner(name="x", fee_percent=Decimal("10.00"), fee_fixed_cents=100)
    assert partner.platform_fee_cents(10005, 1) == 1001 + 100  # 1000.5 rounds half up
    assert partner.platform_fee_cents(0, 2) == 0
    partner.fee_percent = Decimal("0")
    assert partner.platform_fee_cents(10000, 3) == 300


def test_production_refuses_the_development_secret_key():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config({"APP_ENV": "production"})
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_config({"APP_ENV": "production", "SECRET_KEY": "s3cret"})
    config = load_config(
        {"APP_ENV": "production", "SECRET_KEY": "s3cret", "DATABASE_URL": "postgresql://h/db"}
    )
    assert config["SECRET_KEY"] == "s3cret"


def test_development_defaults_to_the_embedded_postgres_and_in_process_tasks():
    config = load_config({})
    assert config["SQLALCHEMY_DATABASE_URI"] is None  # create_app starts the embedded server
    assert config["CELERY_TASK_ALWAYS_EAGER"] is True
    assert config["HOLD_MINUTES"] == 10


def test_postgres_urls_use_psycopg_and_redis_enables_the_broker():
    config = load_config({"DATABASE_URL": "postgresql://u@h/db", "REDIS_URL": "redis://h:6379/0"})
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"
    assert config["CELERY_BROKER_URL"] == "redis://h:6379/0"
    assert config["CELERY_TASK_ALWAYS_EAGER"] is False


def test_a_database_url_that_is_not_postgresql_is_refused():
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_config({"DATABASE_URL": "sqlite:///var/x.db"})


def test_a_bad_integer_setting_is_a_clear_error():
    with pytest.raises(ConfigError, match="HOLD_MINUTES"):
        load_config({"HOLD_MINUTES": "ten"})


def test_a_long_accented_seat_label_is_cut_at_a_character_and_still_verifies():
    from app.models.codes import (
        TicketClaim,
        new_private_key,
        public_key_of,
        sign_ticket,
        verify_ticket,
    )

    key = new_private_key()
    label = "Camarote Área Norte " + "Ç" * 40 + " A-1"
    claim = verify_ticket(public_key_of(key), sign_ticket(key, TicketClaim(7, 99, label)))
    assert (claim.event_id, claim.ticket_id) == (7, 99)
    assert label.startswith(claim.label) and len(claim.label.encode()) <= 60


def test_each_event_key_verifies_only_its_own_codes_once_the_keys_are_kept_in_memory():
    from app.models.codes import (
        InvalidCode,
        TicketClaim,
        new_private_key,
        public_key_of,
        sign_ticket,
        verify_ticket,
    )

    first, second = new_private_key(), new_private_key()
    for _ in range(2):  # the second round finds every key loaded already
        for key, other in ((first, second), (second, first)):
            code = sign_ticket(key, TicketClaim(7, 99, "A-1"))
            assert verify_ticket(public_key_of(key), code).ticket_id == 99
            with pytest.raises(InvalidCode):
                verify_ticket(public_key_of(other), code)
    with pytest.raises(InvalidCode):
        verify_ticket("not a key", sign_ticket(first, TicketClaim(7, 99, "A-1")))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("HOLD_MINUTES", "-5", "at least 1"),
        ("REPORT_RETENTION_DAYS", "-1", "at least 1"),
        ("CELERY_VISIBILITY_TIMEOUT", "0", "at least 60"),
        ("WAITING_ROOM_BURST", "0", "at least 1"),
        ("RATELIMIT_LOGIN", "two per minute", "10 per minute"),
        ("DEFAULT_CURRENCY", "reais", "three-letter"),
    ],
)
def test_a_setting_out_of_its_range_fails_at_start(key, value, message):
    """They were accepted and failed late, or never (a bad rate limit limited nothing, a
    negative retention would have deleted every report file)."""
    with pytest.raises(ConfigError, match=message):
        load_config({key: value})


def test_an_unknown_payment_gateway_fails_at_start():
    from app import create_app

    with pytest.raises(ConfigError, match="PAYMENT_GATEWAY"):
        create_app({"PAYMENT_GATEWAY": "app.services.payments.NoSuchGateway"})
    assert load_config({"DEFAULT_CURRENCY": "usd"})["DEFAULT_CURRENCY"] == "USD"


def test_the_payout_reserve_is_a_percent_of_the_recent_settled_net_rounded_half_up():
    partner = Partner(name="P", reserve_percent=Decimal("2.5"))
    assert partner.reserve_cents(1019) == 25  # 25.475
    assert partner.reserve_cents(1020) == 26  # 25.5 rounds up
    assert partner.reserve_cents(0) == partner.reserve_cents(-5000) == 0
    assert Partner(name="Q", reserve_percent=Decimal(0)).reserve_cents(10**12) == 0


@pytest.mark.parametrize(
    ("percent", "reason"),
    [(Decimal("100.01"), "between"), (Decimal("-0.01"), "between"), (Decimal("NaN"), "between"),
     (Decimal("Infinity"), "between"), (Decimal("1.005"), "two decimal places"),
     (None, "Give the reserve")],
)  # fmt: skip
def test_a_bad_payout_reserve_is_refused_at_its_field(percent, reason):
    partner = Partner(name="P", reserve_percent=Decimal(0))
    with pytest.raises(DomainError, match=reason) as err:
        partner.set_reserve(percent)
    assert err.value.field == "reserve_percent"
    partner.set_reserve(Decimal("100"))
    assert partner.reserve_percent == 100
