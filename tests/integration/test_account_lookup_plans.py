"""A login, a sign-up and a ticket transfer find the account by its lower-cased name or address
through an index, however many accounts there are: FAB looks a login up as lower(username) =
lower(:name), and a sign-up or a transfer a customer as lower(email) = :address. Without the
expression indexes each of them read the whole of ab_user or customer (migration e5a1c7d9b3f2),
a stadium's on-sale meeting a million accounts."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.extensions import db
from app.models.base import utcnow
from tests.support.builders import make_partner
from tests.support.gate import open_event
from tests.support.plans import analyze, generic_plans, statements_run, whole_table_reads
from tests.support.shop import buy, sign_up

ACCOUNTS = 20_000
TABLES = ("ab_user", "customer")


@pytest.fixture
def many_accounts(app) -> None:
    now = {"now": utcnow(), "accounts": ACCOUNTS}
    db.session.execute(
        text(
            "INSERT INTO ab_user (first_name, last_name, username, email, active, created_on) "
            "SELECT 'Fan', n::text, 'fan' || n || '@example.com', 'fan' || n || '@example.com', "
            "true, :now FROM generate_series(1, :accounts) n"
        ),
        now,
    )
    db.session.execute(
        text(
            "INSERT INTO customer (user_id, name, email, created_at) "
            "SELECT id, 'Fan', email, :now FROM ab_user WHERE username LIKE 'fan%%'"
        ),
        now,
    )
    db.session.commit()
    for table in TABLES:
        analyze(table)


@pytest.mark.usefixtures("many_accounts")
def test_sign_up_log_in_and_transfer_read_no_whole_table_of_accounts(client):
    event = open_event(make_partner("Aurora"))
    with statements_run() as seen:
        ana = sign_up(client)
        bruno = "bruno@example.com"
        sign_up(client, bruno, "Bruno Lima")
        [given, _kept] = buy(client, event, buyer=ana)["tickets"]
        moved = client.post(
            f"/api/v1/tickets/{given['id']}/transfer",
            json={"email": "Bruno@Example.com"},
            headers=ana,
        )
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["result"]["to"]["email"] == bruno
    whole = whole_table_reads(generic_plans(seen), TABLES)
    assert not whole, "\n".join(whole)
