"""Promo codes: a partner's code quoted on the hold and charged at checkout, its uses counted
(live holds and valid tickets: an expired hold or a refund gives them back), limits kept in all
and per customer and under buyers racing on PostgreSQL, hidden (presale) sections and types
unlocked only by their code, and the ledger, the statement and the sales report showing gross,
discount and net."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    EventSpot,
    LedgerEntry,
    LedgerTransaction,
    PromoCode,
    Ticket,
    TicketStatus,
    TicketType,
)
from app.models.base import utcnow
from app.services import ledger, refunds
from app.services.payments import gateway
from app.services.scoping import SYSTEM
from tests.support.builders import make_event, make_partner
from tests.support.shop import card_token, crowd, expire, pay, payment_of, sign_up

PRICE = 10000  # make_event's sections; make_partner's fee: 10 % + R$ 1,00 per ticket


def promo(event, code="FANS20", kind="percent", value=20, **fields) -> PromoCode:
    made = PromoCode(partner_id=event.partner_id, event=event, code=code, kind=kind, value=value,
                     **fields)  # fmt: skip
    made.check()
    db.session.add(made)
    db.session.commit()
    return made


@pytest.fixture
def on_sale():
    event = make_event(make_partner("Aurora"), "Show", sections=2, rows=("A", "B"), seats=5)
    event.publish()
    db.session.commit()
    return event


def _hold(client, headers, event, quantity=1, code=None, section=0, **body):
    json = {"event_id": event.id, "section_id": event.sections[section].id, "quantity": quantity,
            **body}  # fmt: skip
    if code is not None:
        json["promo_code"] = code
    return client.post("/api/v1/holds/", json=json, headers=headers)


def test_the_hold_quotes_the_discount_and_checkout_charges_it(client, on_sale):
    promo(on_sale)
    headers = sign_up(client)
    held = _hold(client, headers, on_sale, 2, code="fans20")  # any case
    assert held.status_code == 201, held.get_json()
    hold = held.get_json()["result"]
    assert [(s["gross_cents"], s["discount_cents"], s["price_cents"], s["promo_code"])
            for s in hold["spots"]] == [(PRICE, 2000, 8000, "FANS20")] * 2  # fmt: skip
    assert (hold["gross_cents"], hold["discount_cents"], hold["total_cents"]) == (
        2 * PRICE, 4000, 16000,
    )  # fmt: skip
    paid = client.post(
        f"/api/v1/holds/{hold['id']}/checkout",
        json={"card_token": card_token(client), "expected_total_cents": 16000},
        headers={**headers, "Idempotency-Key": "promo-order-1"},
    )
    assert paid.status_code == 201, paid.get_json()
    order = paid.get_json()["result"]
    assert order["total_cents"] == 16000
    assert [(t["price_cents"], t["discount_cents"]) for t in order["tickets"]] == [(8000, 2000)] * 2
    payment = payment_of(order)
    # The fee is the partner's rule on what was paid: 10 % of 160,00 + 1,00 per ticket.
    assert (payment.amount_cents, payment.fee_cents, payment.net_cents) == (16000, 1800, 14200)
    tickets = db.session.scalars(select(Ticket).where(Ticket.order_id == order["id"])).all()
    assert {(t.promo_code.code, t.discount_cents, t.price_cents) for t in tickets} == {
        ("FANS20", 2000, 8000)
    }


def test_the_ledger_statement_and_sales_report_show_gross_discount_and_net(client, on_sale):
    from app.services.reports.contents import Period, sales_rows, statement_rows

    code = promo(on_sale, kind="amount_off", value=2500)
    headers = sign_up(client)
    held = _hold(client, headers, on_sale, 2, code=code.code).get_json()["result"]
    order = pay(client, headers, held["id"], card_token(client)).get_json()["result"]
    payment = payment_of(order)
    assert (payment.amount_cents, payment.fee_cents) == (15000, 1700)
    partner_account = ledger.partner_account_id(db.session, on_sale.partner_id, "Aurora")
    entries = db.session.execute(
        select(LedgerEntry.account_id, LedgerEntry.amount_cents, LedgerEntry.promo_code_id)
        .join(LedgerTransaction)
        .where(LedgerTransaction.payment_id == payment.id)
    ).all()
    assert sum(amount for _, amount, _ in entries) == 0
    on_partner = [(amount, code_id) for account, amount, code_id in entries
                  if account == partner_account]  # fmt: skip
    # Credited the gross less the fee, debited the discount on a line of its own.
    assert sorted(on_partner) == [(-(2 * PRICE - 1700), None), (5000, code.id)]
    book = ledger.partner_statements(db.session, [on_sale.partner_id])[0]
    assert (book["sales"], book["discounts"], book["fees"], book["balance"]) == (
        2 * PRICE, 5000, 1700, 15000 - 1700,
    )  # fmt: skip
    columns, rows = sales_rows(db.session, on_sale.partner_id, None)
    [line] = [dict(zip(columns, r, strict=True)) for r in rows if r[0] == "order"]
    figures = [line[key].cents for key in ("gross", "discounts", "fees", "net")]
    assert figures == [2 * PRICE, 5000, 1700, 15000 - 1700]
    day = payment.created_at.date()
    columns, rows = statement_rows(db.session, on_sale.partner_id, Period(day, day))
    closing = [dict(zip(columns, r, strict=True)) for r in rows if r[0] == "closing"][0]
    assert (closing["sales"].cents, closing["discounts"].cents, closing["balance"].cents) == (
        2 * PRICE, 5000, 15000 - 1700,
    )  # fmt: skip


def test_an_expired_hold_gives_its_uses_back_at_once_and_a_refund_too(client, on_sale):
    promo(on_sale, max_uses=2)
    first, second = sign_up(client, "first@example.com"), sign_up(client, "second@example.com")
    taken = _hold(client, first, on_sale, 2, code="FANS20")
    assert taken.status_code == 201
    refused = _hold(client, second, on_sale, 1, code="FANS20")
    assert refused.status_code == 409, refused.get_json()
    assert refused.get_json()["error"] == "promo_code_used_up"
    assert refused.get_json()["field"] == "promo_code" and refused.get_json()["left"] == 0
    expire(taken.get_json()["result"]["id"])  # no sweep: its time is over
    again = _hold(client, second, on_sale, 2, code="FANS20")
    assert again.status_code == 201, again.get_json()
    order = pay(client, second, again.get_json()["result"]["id"], card_token(client))
    assert order.status_code == 201
    assert _hold(client, first, on_sale, 1, code="FANS20").status_code == 409  # sold count
    refunded = order.get_json()["result"]["tickets"][0]["id"]
    refunds.refund_tickets(db.session, gateway(), order.get_json()["result"]["id"], [refunded],
                           SYSTEM)  # fmt: skip
    back = _hold(client, first, on_sale, 1, code="FANS20")
    assert back.status_code == 201, back.get_json()  # the refunded ticket's use
    assert _hold(client, first, on_sale, 1, code="FANS20").status_code == 409


def test_a_customer_uses_a_code_at_most_its_uses_per_customer(client, on_sale):
    promo(on_sale, max_uses_per_customer=2)
    ana, bia = sign_up(client, "ana@example.com"), sign_up(client, "bia@example.com")
    assert _hold(client, ana, on_sale, 2, code="FANS20").status_code == 201
    over = _hold(client, ana, on_sale, 1, code="FANS20")
    assert over.status_code == 409 and over.get_json()["field"] == "promo_code"
    assert _hold(client, ana, on_sale, 1).status_code == 201  # without the code she may buy
    assert _hold(client, bia, on_sale, 2, code="FANS20").status_code == 201


def test_a_code_that_does_not_apply_is_refused_naming_the_field(client, on_sale):
    now = utcnow()
    promo(on_sale, "LATER", valid_from=now + dt.timedelta(days=1))
    promo(on_sale, "GONE", valid_until=now - dt.timedelta(minutes=1))
    promo(on_sale, "VIPONLY", section=on_sale.sections[1])
    promo(on_sale, "OFF", active=False)
    other_event = make_event(on_sale.partner, "Outro")
    promo(other_event, "ELSEWHERE")
    foreign = make_event(make_partner("Outra"), "Deles")
    promo(foreign, "THEIRS")
    free = promo(on_sale, "FREE", kind="amount_off", value=PRICE)
    headers = sign_up(client)
    answers = {
        code: _hold(client, headers, on_sale, 1, code=code)
        for code in ("NOPE", "THEIRS", "OFF", "LATER", "GONE", "ELSEWHERE", "VIPONLY", "FREE")
    }
    statuses = {code: (a.status_code, a.get_json()["field"]) for code, a in answers.items()}
    assert statuses == {
        "NOPE": (404, "promo_code"), "THEIRS": (404, "promo_code"), "OFF": (404, "promo_code"),
        "LATER": (422, "promo_code"), "GONE": (422, "promo_code"),
        "ELSEWHERE": (422, "promo_code"), "VIPONLY": (422, "promo_code"),
        "FREE": (422, "promo_code"),
    }  # fmt: skip
    assert "expired" in answers["GONE"].get_json()["message"]
    assert _hold(client, headers, on_sale, 1, code=123).status_code == 422
    # A code for all the partner's events applies to this one.
    promo(other_event, "ALL10", value=10).event = None
    db.session.commit()
    assert free.event_id == on_sale.id
    assert _hold(client, headers, on_sale, 1, code="ALL10").status_code == 201
    assert db.session.scalar(select(func.count(EventSpot.id)).where(
        EventSpot.held_promo_code_id.is_not(None))) == 1  # fmt: skip


def test_a_hidden_section_and_type_are_held_only_with_their_code(client, on_sale):
    vip = on_sale.sections[1]
    vip.hidden = True
    presale = TicketType(section=on_sale.sections[0], name="Pré-venda", kind="other",
                         price_cents=7000, hidden=True)  # fmt: skip
    db.session.add(presale)
    db.session.commit()
    promo(on_sale, "VIPFANS", kind="fixed_price", value=9000, section=vip)
    promo(on_sale, "PRESALE", kind="percent", value=10, ticket_type=presale)
    promo(on_sale, "ANY", value=5)
    headers = sign_up(client)
    assert _hold(client, headers, on_sale, 1, section=1).status_code == 404
    assert _hold(client, headers, on_sale, 1, section=1, code="ANY").status_code == 404
    vip_spot = vip.spots[0].id
    chosen = client.post("/api/v1/holds/", json={"event_id": on_sale.id, "spot_ids": [vip_spot]},
                         headers=headers)  # fmt: skip
    assert chosen.status_code == 404 and chosen.get_json()["field"] == "spot_ids"
    unlocked = _hold(client, headers, on_sale, 1, section=1, code="VIPFANS")
    assert unlocked.status_code == 201, unlocked.get_json()
    assert unlocked.get_json()["result"]["spots"][0]["price_cents"] == 9000
    typed = {"ticket_types": [presale.id]}
    assert _hold(client, headers, on_sale, 1, **typed).status_code == 404
    with_code = _hold(client, headers, on_sale, 1, code="PRESALE", **typed)
    assert with_code.status_code == 201, with_code.get_json()
    assert with_code.get_json()["result"]["spots"][0]["price_cents"] == 6300
    # The event's public page lists neither without the code.
    public = client.get(f"/api/v1/catalog/events/{on_sale.id}").get_json()["result"]
    assert [s["name"] for s in public["sections"]] == ["Section 1"]
    assert public["sections"][0]["ticket_types"] == []


BUYERS, USES = 12, 5


@pytest.mark.concurrency
def test_racing_buyers_never_pass_a_codes_uses(app, db_context):
    event = make_event(make_partner("Arena"), "Final", rows=("A", "C"), seats=10)
    event.publish()
    db.session.commit()
    promo(event, "RACE", max_uses=USES)
    clients = crowd(app, BUYERS)
    start = threading.Barrier(BUYERS)
    wanted = {"event_id": event.id, "section_id": event.sections[0].id, "quantity": 1,
              "promo_code": "RACE"}  # fmt: skip

    def buy_with_code(pair):
        client, headers = pair
        start.wait(30)
        held = client.post("/api/v1/holds/", json=wanted, headers=headers)
        if held.status_code != 201:
            return held.status_code
        return pay(client, headers, held.get_json()["result"]["id"], card_token(client)).status_code

    with ThreadPoolExecutor(BUYERS) as pool:
        statuses = list(pool.map(buy_with_code, clients))
    assert sorted(statuses) == [201] * USES + [409] * (BUYERS - USES), statuses
    discounted = db.session.scalar(
        select(func.count(Ticket.id)).where(
            Ticket.promo_code_id.is_not(None), Ticket.status == TicketStatus.VALID
        )
    )
    assert discounted == USES


def test_the_shop_lists_a_hidden_section_only_with_its_code_at_its_price(client, on_sale):
    vip = on_sale.sections[1]
    vip.name, vip.hidden = "Pré-venda fãs", True
    db.session.commit()
    promo(on_sale, "FANCLUB", kind="fixed_price", value=6000, section=vip)
    assert "Pré-venda fãs" not in client.get(f"/events/{on_sale.id}").get_data(as_text=True)
    page = client.get(f"/events/{on_sale.id}?code=fanclub").get_data(as_text=True)
    assert "Pré-venda fãs" in page and "R$60.00" in page


def test_the_openapi_spec_offers_a_promo_code_on_a_hold_and_the_partners_codes(client):
    from tests.support.builders import api_token, make_user

    make_user("root", "Admin")
    spec = client.get("/api/v1/_openapi", headers=api_token(client, "root")).get_json()
    hold = spec["paths"]["/api/v1/holds/"]["post"]["requestBody"]["content"]["application/json"]
    assert hold["schema"]["properties"]["promo_code"]["type"] == "string"
    assert "/api/v1/promo-codes/" in spec["paths"]


def test_the_catalog_api_shows_a_codes_prices_and_the_sections_it_unlocks(client, on_sale):
    vip = on_sale.sections[1]
    vip.hidden = True
    db.session.commit()
    promo(on_sale, "FANCLUB", kind="fixed_price", value=6000, section=vip)
    promo(on_sale, "FANS20")
    url = f"/api/v1/catalog/events/{on_sale.id}"
    unlocked = client.get(f"{url}?code=fanclub").get_json()["result"]["sections"]
    assert [(s["name"], s["promo_price_cents"]) for s in unlocked] == [
        ("Section 1", None), ("Section 2", 6000),
    ]  # fmt: skip
    everywhere = client.get(f"{url}?code=FANS20").get_json()["result"]["sections"]
    assert [s["promo_price_cents"] for s in everywhere] == [8000]
    unknown = client.get(f"{url}?code=NOPE")
    assert unknown.status_code == 404 and unknown.get_json()["field"] == "promo_code"


@pytest.mark.concurrency
def test_a_code_without_a_limit_in_all_is_not_a_queue(client, on_sale):
    """Its row is only read: a hold with it does not wait for another holding the row (a presale
    where every fan types the same code), while a code with a limit is locked and waits."""
    unlimited = promo(on_sale, "FANS")
    limited = promo(on_sale, "FIRST5", max_uses=5)
    headers = sign_up(client)
    with db.engine.connect() as conn, conn.begin():
        for code in (unlimited, limited):
            # as a hold of each takes its lock (FOR NO KEY UPDATE, promo_codes.py)
            locking = select(PromoCode.id).where(PromoCode.id == code.id)
            conn.execute(locking.with_for_update(key_share=True))
        assert _hold(client, headers, on_sale, code="FANS").status_code == 201
        waited = _hold(client, sign_up(client, "bia@example.com"), on_sale, code="FIRST5")
        assert waited.status_code == 503 and waited.get_json()["error"] == "busy"
