"""Ticket types within a section: full price, half price (meia-entrada) capped, courtesy kept out
of the shop. The buyer picks a type per ticket, the hold quotes its price, checkout charges it,
the ticket, the order and the gate show it, and the cap holds under buyers racing on PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Conflict, EventSpot, NotFound, SpotStatus, Ticket, TicketStatus, TicketType
from app.models.codes import read_claim
from app.models.ticket_type import half_price_cap
from app.services import refunds
from app.services.payments import gateway
from app.services.scoping import SYSTEM
from tests.support.builders import (
    PartnerActor,
    api_token,
    login,
    make_event,
    make_partner,
    make_user,
)
from tests.support.gate import device, open_event, result, scan
from tests.support.pages import text
from tests.support.shop import card_token, crowd, expire, pay, payment_of, sign_up

FULL, HALF = 10000, 5000


def _types(section, *, half_cap: int | None = 2) -> dict[str, TicketType]:
    made = {
        "full": TicketType(section=section, name="Inteira", kind="full", price_cents=FULL),
        "half": TicketType(
            section=section, name="Meia-entrada", kind="half", price_cents=HALF, cap=half_cap
        ),
        "courtesy": TicketType(
            section=section, name="Cortesia", kind="courtesy", price_cents=0, public=False
        ),
    }
    db.session.add_all(made.values())
    db.session.commit()
    return made


@pytest.fixture
def typed():
    """A published event of 10 seats (rows A and B) with full, half (cap 2) and courtesy."""
    event = make_event(make_partner("Aurora"), "Teatro", rows=("A", "B"), seats=5)
    event.publish()
    db.session.commit()
    return {"event": event, "section": event.sections[0], **_types(event.sections[0])}


def _hold(client, headers, typed, kinds: list[str]):
    return client.post(
        "/api/v1/holds/",
        json={
            "event_id": typed["event"].id,
            "section_id": typed["section"].id,
            "quantity": len(kinds),
            "ticket_types": [typed[k].id for k in kinds],
        },
        headers=headers,
    )


def test_each_ticket_is_held_charged_and_issued_at_its_types_price(client, typed):
    headers = sign_up(client)
    held = _hold(client, headers, typed, ["half", "full", "half"])
    assert held.status_code == 201, held.get_json()
    spots = held.get_json()["result"]["spots"]
    assert sorted((s["ticket_type"], s["price_cents"]) for s in spots) == [
        ("Inteira", FULL), ("Meia-entrada", HALF), ("Meia-entrada", HALF),
    ]  # fmt: skip
    paid = pay(client, headers, held.get_json()["result"]["id"], card_token(client))
    assert paid.status_code == 201, paid.get_json()
    order = paid.get_json()["result"]
    assert order["total_cents"] == FULL + 2 * HALF
    assert payment_of(order).amount_cents == FULL + 2 * HALF
    assert sorted(t["ticket_type"] for t in order["tickets"]) == [
        "Inteira", "Meia-entrada", "Meia-entrada",
    ]  # fmt: skip
    stored = db.session.scalars(select(Ticket).where(Ticket.order_id == order["id"])).all()
    assert sorted((t.ticket_type.name, t.price_cents) for t in stored) == [
        ("Inteira", FULL), ("Meia-entrada", HALF), ("Meia-entrada", HALF),
    ]  # fmt: skip


def test_the_cap_counts_live_holds_and_valid_tickets_and_frees_what_ends(client, typed):
    first, second = sign_up(client, "first@example.com"), sign_up(client, "second@example.com")
    taken = _hold(client, first, typed, ["half", "half"])
    assert taken.status_code == 201
    refused = _hold(client, second, typed, ["half"])
    assert refused.status_code == 409
    assert refused.get_json()["error"] == "ticket_type_sold_out"
    assert refused.get_json()["left"] == 0
    assert _hold(client, second, typed, ["full"]).status_code == 201  # other types still sell
    expire(taken.get_json()["result"]["id"])  # an expired hold gives its places back
    again = _hold(client, second, typed, ["half", "half"])
    assert again.status_code == 201, again.get_json()
    paid = pay(client, second, again.get_json()["result"]["id"], card_token(client))
    assert paid.status_code == 201
    assert _hold(client, first, typed, ["half"]).status_code == 409  # sold counts too
    refunds.refund_order(db.session, gateway(), paid.get_json()["result"]["id"], SYSTEM)
    assert _hold(client, first, typed, ["half"]).status_code == 201  # a refund gives it back


def test_a_type_the_shop_does_not_offer_or_of_another_section_is_refused(client, typed):
    headers = sign_up(client)
    hidden = _hold(client, headers, typed, ["courtesy"])
    assert hidden.status_code == 404 and hidden.get_json()["field"] == "ticket_types"
    other = make_event(make_partner("Outra"), "Outro", rows=("A", "A"), seats=2)
    foreign = TicketType(section=other.sections[0], name="X", kind="full", price_cents=1)
    db.session.add(foreign)
    db.session.commit()
    wrong = client.post(
        "/api/v1/holds/",
        json={"event_id": typed["event"].id, "section_id": typed["section"].id, "quantity": 1,
              "ticket_types": [foreign.id]},
        headers=headers,
    )  # fmt: skip
    assert wrong.status_code == 404
    miscounted = client.post(
        "/api/v1/holds/",
        json={"event_id": typed["event"].id, "section_id": typed["section"].id, "quantity": 2,
              "ticket_types": [typed["half"].id]},
        headers=headers,
    )  # fmt: skip
    assert miscounted.status_code == 422 and miscounted.get_json()["field"] == "ticket_types"


def test_chosen_seats_take_the_type_given_for_each(client, typed):
    headers = sign_up(client)
    a1, a2 = typed["section"].spots[:2]
    held = client.post(
        "/api/v1/holds/",
        json={"event_id": typed["event"].id, "spot_ids": [a2.id, a1.id],
              "ticket_types": [typed["half"].id, typed["full"].id]},
        headers=headers,
    )  # fmt: skip
    assert held.status_code == 201, held.get_json()
    by_spot = {
        s["id"]: (s["ticket_type"], s["price_cents"]) for s in held.get_json()["result"]["spots"]
    }
    assert by_spot == {a2.id: ("Meia-entrada", HALF), a1.id: ("Inteira", FULL)}


def test_the_shop_page_offers_each_type_and_holds_what_was_picked(client, typed):
    sign_up(client, "ana@example.com")
    login(client, "ana@example.com", "Ingresso-Azul-77")
    page = text(client.get(f"/events/{typed['event'].id}"))
    assert "Meia-entrada" in page and "Cortesia" not in page
    assert f'name="qty_{typed["half"].id}"' in page
    held = client.post(
        f"/events/{typed['event'].id}/hold",
        data={"section_id": typed["section"].id, f"qty_{typed['half'].id}": "1",
              f"qty_{typed['full'].id}": "2"},
        follow_redirects=True,
    )  # fmt: skip
    assert held.status_code == 200
    spots = db.session.scalars(select(EventSpot).where(EventSpot.status == SpotStatus.HELD)).all()
    assert sorted(s.held_price_cents for s in spots) == [HALF, FULL, FULL]


def test_the_gate_says_to_check_a_half_price_holders_document(client, store):
    partner = make_partner("Aurora")
    event = open_event(partner)
    section = event.sections[0]
    kinds = _types(section)
    headers = sign_up(client)
    held = client.post(
        "/api/v1/holds/",
        json={"event_id": event.id, "section_id": section.id, "quantity": 2,
              "ticket_types": [kinds["half"].id, kinds["full"].id]},
        headers=headers,
    )  # fmt: skip
    paid = pay(client, headers, held.get_json()["result"]["id"], card_token(client))
    tickets = {t["ticket_type"]: t["code"] for t in paid.get_json()["result"]["tickets"]}
    gate = device(partner, event)
    half = result(scan(client, gate, tickets["Meia-entrada"]))
    assert half["result"] == "valid"
    assert half["ticket_type"] == "Meia-entrada" and half["check_document"] is True
    full = result(scan(client, gate, tickets["Inteira"]))
    assert full["check_document"] is False
    # The signed code names the type: a gate working offline reads it too.
    claim, _, _ = read_claim(tickets["Meia-entrada"])
    assert claim.label.endswith(" · Meia-entrada")


def test_a_partner_defines_types_through_the_api_and_sees_only_its_own(client, typed):
    partner = typed["event"].partner
    make_user("alice", "Partner", partner)
    headers = api_token(client, "alice")
    made = client.post(
        "/api/v1/ticket-types/",
        json={"section": typed["section"].id, "name": "Estudante", "kind": "half",
              "price_cents": 4500, "cap": half_price_cap(10)},
        headers=headers,
    )  # fmt: skip
    assert made.status_code == 201, made.get_json()
    assert db.session.get(TicketType, made.get_json()["id"]).cap == 4  # 40 % of 10 seats
    other = make_partner("Outra")
    make_user("bob", "Partner", other)
    theirs = client.get(
        f"/api/v1/ticket-types/{made.get_json()['id']}", headers=api_token(client, "bob")
    )
    assert theirs.status_code == 404
    free_courtesy = client.post(
        "/api/v1/ticket-types/",
        json={"section": typed["section"].id, "name": "VIP", "kind": "courtesy", "price_cents": 10},
        headers=headers,
    )
    assert free_courtesy.status_code == 422 and free_courtesy.get_json()["field"] == "price_cents"


BUYERS = 12


@pytest.mark.concurrency
def test_racing_buyers_never_pass_the_half_price_cap(app, db_context):
    event = make_event(make_partner("Arena"), "Final", rows=("A", "C"), seats=10)
    event.publish()
    db.session.commit()
    kinds = _types(event.sections[0], half_cap=5)
    clients = crowd(app, BUYERS)
    start = threading.Barrier(BUYERS)
    wanted = {"event_id": event.id, "section_id": event.sections[0].id, "quantity": 1,
              "ticket_types": [kinds["half"].id]}  # fmt: skip

    def buy_half(pair):
        client, headers = pair
        start.wait(30)
        return client.post("/api/v1/holds/", json=wanted, headers=headers).status_code

    with ThreadPoolExecutor(BUYERS) as pool:
        statuses = list(pool.map(buy_half, clients))
    assert sorted(statuses) == [201] * 5 + [409] * (BUYERS - 5), statuses
    held = db.session.scalar(
        select(func.count(EventSpot.id)).where(EventSpot.held_ticket_type_id == kinds["half"].id)
    )
    assert held == 5
    assert (
        db.session.scalar(select(func.count(Ticket.id)).where(Ticket.status == TicketStatus.VALID))
        == 0
    )


def test_the_sales_report_shows_each_orders_tickets_by_type(client, typed):
    from app.services.reports.contents import SALES_COLUMNS, sales_rows

    headers = sign_up(client)
    held = _hold(client, headers, typed, ["half", "full", "half"])
    paid = pay(client, headers, held.get_json()["result"]["id"], card_token(client))
    columns, rows = sales_rows(db.session, typed["event"].partner_id, None)
    lines = [dict(zip(columns, row, strict=True)) for row in rows]
    [order] = [line for line in lines if line["line"] == "order"]
    assert order["order_id"] == paid.get_json()["result"]["id"]
    assert order["ticket_types"] == "Inteira x1; Meia-entrada x2"
    assert columns == SALES_COLUMNS


def test_the_ledger_and_the_statement_split_a_sale_and_a_refund_by_type(client, typed):
    from app.models import LedgerEntry, LedgerTransaction
    from app.services import ledger
    from app.services.reports.contents import Period, statement_rows

    headers = sign_up(client)
    held = _hold(client, headers, typed, ["half", "full", "half"])
    order = pay(client, headers, held.get_json()["result"]["id"], card_token(client)).get_json()
    payment = payment_of(order["result"])
    fee_revenue = ledger.account_id(db.session, ledger.FEE_REVENUE)

    def split(kind: str) -> dict[tuple[str, int | None], int]:
        entries = db.session.execute(
            select(LedgerEntry.account_id, LedgerEntry.ticket_type_id, LedgerEntry.amount_cents)
            .join(LedgerTransaction)
            .where(LedgerTransaction.payment_id == payment.id, LedgerTransaction.kind == kind)
        ).all()
        return {
            ("fee" if account == fee_revenue else "other", kind_id): amount
            for account, kind_id, amount in entries
            if kind_id is not None
        }

    half, full = typed["half"].id, typed["full"].id
    sale = split("capture")
    # Each type's fee and partner lines add up to its gross; the fees to the payment's fee.
    assert -(sale[("fee", half)] + sale[("other", half)]) == 2 * HALF
    assert -(sale[("fee", full)] + sale[("other", full)]) == FULL
    assert -(sale[("fee", half)] + sale[("fee", full)]) == payment.fee_cents
    assert sale[("fee", half)] < 0 and sale[("fee", full)] < 0
    # A half-price ticket refunded: its refund is posted as half price.
    refunded = next(t for t in order["result"]["tickets"] if t["ticket_type"] == "Meia-entrada")
    refunds.refund_tickets(db.session, gateway(), order["result"]["id"], [refunded["id"]], SYSTEM)
    back = split("refund")
    assert set(back) <= {("fee", half), ("other", half)}
    assert sum(back.values()) == HALF
    day = payment.created_at.date()
    columns, rows = statement_rows(db.session, typed["event"].partner_id, Period(day, day))
    lines = [dict(zip(columns, row, strict=True)) for row in rows]
    by_type = {line["description"]: line for line in lines if line["line"] == "ticket type"}
    assert set(by_type) == {"Inteira", "Meia-entrada"}
    assert by_type["Meia-entrada"]["sales"].cents == 2 * HALF
    assert by_type["Meia-entrada"]["refunds"].cents == HALF
    assert by_type["Inteira"]["sales"].cents == FULL


def test_a_partner_gives_courtesy_tickets_that_count_in_the_cap_and_admit_at_the_gate(client):
    from app.models import Order
    from app.services import courtesy

    partner = make_partner("Aurora")
    event = open_event(partner)
    kinds = _types(event.sections[0])
    kinds["courtesy"].cap = 3
    db.session.commit()
    sign_up(client, "guest@example.com")
    actor = PartnerActor(partner)
    given = courtesy.give(db.session, actor, kinds["courtesy"].id, "guest@example.com", 2)
    order = db.session.get(Order, given.order_id)
    assert (order.status, order.total_cents) == ("paid", 0)
    tickets = db.session.scalars(select(Ticket).where(Ticket.order_id == order.id)).all()
    assert [(t.status, t.price_cents, t.ticket_type.name) for t in tickets] == [
        ("valid", 0, "Cortesia"), ("valid", 0, "Cortesia"),
    ]  # fmt: skip
    spots = db.session.scalars(
        select(EventSpot).where(EventSpot.id.in_([t.spot_id for t in tickets]))
    )
    assert {s.status for s in spots} == {SpotStatus.SOLD}
    with pytest.raises(Conflict):  # the cap of 3 counts the 2 given
        courtesy.give(db.session, actor, kinds["courtesy"].id, "guest@example.com", 2)
    db.session.rollback()
    with pytest.raises(Conflict):  # only a courtesy type is given away
        courtesy.give(db.session, actor, kinds["half"].id, "guest@example.com", 1)
    db.session.rollback()
    with pytest.raises(NotFound) as nobody:
        courtesy.give(db.session, actor, kinds["courtesy"].id, "nobody@example.com", 1)
    assert nobody.value.field == "email"
    db.session.rollback()
    with pytest.raises(NotFound):  # another partner's type does not exist for this one
        courtesy.give(db.session, PartnerActor(make_partner("Outra")), kinds["courtesy"].id,
                      "guest@example.com", 1)  # fmt: skip
    db.session.rollback()
    gate = device(partner, event)
    verdict = result(scan(client, gate, tickets[0].code))
    assert verdict["result"] == "valid" and verdict["ticket_type"] == "Cortesia"


def test_the_dashboard_gives_courtesy_tickets_from_a_courtesy_type(client, typed):
    make_user("alice", "Partner", typed["event"].partner)
    sign_up(client, "guest@example.com")
    login(client, "alice")
    kind = typed["courtesy"].id
    form = client.get(f"/tickettypeview/give/{kind}")
    assert form.status_code == 200 and 'name="email"' in text(form)
    given = client.post(
        f"/tickettypeview/give/{kind}", data={"email": "guest@example.com", "quantity": "2"}
    )
    assert given.status_code == 302
    assert (
        db.session.scalar(select(func.count(Ticket.id)).where(Ticket.ticket_type_id == kind)) == 2
    )
    unknown = client.post(
        f"/tickettypeview/give/{kind}", data={"email": "nobody@example.com", "quantity": "1"}
    )
    assert unknown.status_code == 200 and "sign up first" in text(unknown)
