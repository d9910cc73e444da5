"""The simulated acquirer charges a token once per idempotency key, as a real processor does."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app import sim_acquirer
from app.extensions import db
from app.models.base import utcnow
from app.sim_acquirer.api import TOKEN_LIFETIME
from app.sim_acquirer.models import SimCharge, SimToken


def token(number: str = "4242424242424242") -> str:
    card = {"number": number, "exp_month": 12, "exp_year": utcnow().year + 2, "cvc": "123",
            "holder_name": "Ana Souza"}  # fmt: skip
    return sim_acquirer.tokenize(card)["token"]


def used_at(value: str) -> dt.datetime | None:
    with Session(db.engine) as session:
        return session.get(SimToken, value).used_at


def charges() -> int:
    with Session(db.engine) as session:
        return session.scalar(select(func.count()).select_from(SimCharge))


def test_an_approving_card_is_charged_once_and_its_token_is_spent():
    card = token()
    first = sim_acquirer.charge(card, 5000, "BRL", "key-0001")
    assert first.status == "succeeded" and first.card["last4"] == "4242"
    assert used_at(card) is not None
    again = sim_acquirer.charge(card, 5000, "BRL", "key-0001")
    assert again == first  # a retry of the key answers the first charge
    other_key = sim_acquirer.charge(card, 5000, "BRL", "key-0002")
    assert (other_key.status, other_key.decline_code) == ("declined", "token_already_used")
    assert charges() == 2  # the charge and the refused one; nothing charged twice


def test_a_retried_key_with_a_new_token_answers_the_first_charge_and_spends_nothing():
    first = sim_acquirer.charge(token(), 5000, "BRL", "key-0003")
    fresh = token()
    again = sim_acquirer.charge(fresh, 5000, "BRL", "key-0003")
    assert again.charge_id == first.charge_id and again.status == "succeeded"
    assert used_at(fresh) is None
    assert sim_acquirer.charge(fresh, 700, "BRL", "key-0004").status == "succeeded"


def test_an_expired_token_is_refused_and_a_declining_card_keeps_its_token():
    old = token()
    with Session(db.engine) as session:
        session.get(SimToken, old).created_at -= TOKEN_LIFETIME + dt.timedelta(seconds=1)
        session.commit()
    expired = sim_acquirer.charge(old, 5000, "BRL", "key-0005")
    assert (expired.status, expired.decline_code) == ("declined", "token_expired")
    assert used_at(old) is None
    declining = token("4000000000000002")
    refused = sim_acquirer.charge(declining, 5000, "BRL", "key-0006")
    assert (refused.status, refused.decline_code) == ("declined", "card_declined")
    assert used_at(declining) is None


def test_tokenizing_cards_reuses_one_autocommit_engine(app, monkeypatch):
    """Each tokenization used to build the app's engine in autocommit anew (140 µs a card)."""
    made = []
    build = Engine.execution_options

    def counted(engine: Engine, **options: object) -> Engine:
        made.append(options)
        return build(engine, **options)

    monkeypatch.setattr(Engine, "execution_options", counted)
    tokens = {token() for _ in range(3)}
    assert len(tokens) == 3
    assert len([options for options in made if options == {"isolation_level": "AUTOCOMMIT"}]) <= 1
