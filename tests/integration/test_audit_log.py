"""The staff audit log: every change to events, sections, spots, partners, refunds, payouts and
staff users is written with who made it and each field before and after, in the transaction of
the change; admins read every entry, a partner its own partner's, nobody else any."""

from __future__ import annotations

import csv
import io
import json

import pytest
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import AuditEntry, EventSection, EventSpot, Payout, PayoutStatus
from app.services import events as event_service
from app.services.scoping import SYSTEM
from app.tasks import celery
from tests.support.builders import api_token, login, make_event, make_user
from tests.support.database import count
from tests.support.money import create_payouts, happened_days_ago, reconcile
from tests.support.shop import buy, payment_of, sign_up


def entries(**where: object) -> list[AuditEntry]:
    query = select(AuditEntry).filter_by(**where).order_by(AuditEntry.id)
    return list(db.session.scalars(query))


def forget_setup() -> None:
    """The fixtures' own rows were logged too (by the system): the tests read what follows."""
    db.session.query(AuditEntry).delete()
    db.session.commit()


@pytest.fixture
def staff(client, two_partners):
    forget_setup()
    return two_partners


def test_a_section_price_changed_in_the_dashboard_is_logged_with_its_actor(client, staff):
    section = staff["event_a"].sections[0]
    login(client, "alice")
    response = client.post(
        f"/eventsectionview/edit/{section.id}",
        data={"name": "Pista", "kind": "seated", "price_amount": "672.34", "position": "0"},
    )
    assert response.status_code == 302
    [entry] = entries(object_type="section", object_id=section.id)
    assert (entry.action, entry.actor_name, entry.actor_roles) == ("update", "alice", "Partner")
    assert entry.actor_id == current_app.appbuilder.sm.find_user(username="alice").id
    assert entry.changes == {"price_cents": [10000, 67234], "name": ["Section 1", "Pista"]}
    assert entry.partner_id == staff["a"].id
    assert entry.source == f"POST /eventsectionview/edit/{section.id}"
    assert entry.request_id and entry.ip == "127.0.0.1"


def test_changes_through_the_rest_api_are_logged_with_its_actor(client, staff):
    event, section = staff["event_a"], staff["event_a"].sections[0]
    headers = api_token(client, "alice")
    renamed = client.put(f"/api/v1/events/{event.id}", json={"name": "Gala"}, headers=headers)
    assert renamed.status_code == 200, renamed.get_json()
    priced = client.put(
        f"/api/v1/sections/{section.id}", json={"price_cents": 67234}, headers=headers
    )
    assert priced.status_code == 200, priced.get_json()
    [renaming] = entries(object_type="event", object_id=event.id)
    assert (renaming.actor_name, renaming.changes) == ("alice", {"name": ["A Concert", "Gala"]})
    assert renaming.source == f"PUT /api/v1/events/{event.id}"
    [pricing] = entries(object_type="section", object_id=section.id)
    assert (pricing.actor_name, pricing.changes) == ("alice", {"price_cents": [10000, 67234]})


def test_publishing_and_cancelling_an_event_are_logged_as_such(client, staff):
    event = staff["event_a"]
    login(client, "alice")
    client.post(f"/eventview/action/publish/{event.id}")
    client.post(f"/eventview/cancel/{event.id}", data={"reason": "Storm"})
    publish, cancel = entries(object_type="event", object_id=event.id)
    assert publish.action == "publish" and publish.changes["status"] == ["draft", "published"]
    assert cancel.action == "cancel" and cancel.changes["status"] == ["published", "cancelled"]
    assert cancel.changes["cancel_reason"] == [None, "Storm"]
    assert {publish.actor_name, cancel.actor_name} == {"alice"}


def test_an_admin_changing_a_partners_fee_is_logged(client, staff):
    partner = staff["a"]
    login(client, "root")
    response = client.post(
        f"/partnerview/edit/{partner.id}",
        data={
            "name": partner.name,
            "contact_email": "p@example.com",
            "fee_percent": "12,5",
            "fee_fixed_amount": "1.50",
            "daily_summary": "y",  # as the form shows it: ticked
        },
    )
    assert response.status_code == 302
    [entry] = entries(object_type="partner", object_id=partner.id)
    assert (entry.actor_name, entry.actor_roles, entry.partner_id) == ("root", "Admin", partner.id)
    assert entry.changes == {"fee_percent": ["10.00", "12.50"], "fee_fixed_cents": [100, 150]}


def test_an_admins_change_of_a_users_roles_and_partner_is_logged_without_the_password(
    client, staff
):
    sm = current_app.appbuilder.sm
    gina = sm.find_user(username="gina")
    login(client, "root")
    response = client.post(
        f"/users/edit/{gina.id}",
        data={
            "first_name": "Gina",
            "last_name": "Test",
            "username": "gina",
            "email": "gina@example.com",
            "active": "y",
            "roles": [str(sm.find_role("Partner").id)],
            "partner": str(staff["b"].id),
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    edits = entries(object_type="user", object_id=gina.id)  # FAB's edit flushes twice
    assert {entry.actor_name for entry in edits} == {"root"}
    changes = {field: change for entry in edits for field, change in entry.changes.items()}
    assert changes == {
        "roles": [["Gate"], ["Partner"]],
        "partner_id": [staff["a"].id, staff["b"].id],
    }
    sm.reset_password(gina.id, "N3w-Passw0rd!x")
    [*_, reset] = entries(object_type="user", object_id=gina.id)
    assert reset.changes == {"password": ["[redacted]", "[redacted]"]}
    assert "pbkdf2" not in json.dumps([e.changes for e in entries()])


def test_no_secret_is_written_to_the_log(staff):
    event = make_event(staff["a"], "Secret keeper")
    [created] = entries(object_type="event", object_id=event.id)
    assert created.changes["signing_key"] == [None, "[redacted]"]
    assert event.signing_key not in json.dumps(created.changes)


def test_customers_signing_up_and_buying_write_nothing(client, on_sale):
    forget_setup()
    buy(client, on_sale, 2)
    sign_up(client, "late@example.com")
    assert entries() == []


def test_blocking_many_spots_writes_one_entry_per_section(staff):
    event = make_event(staff["a"], "Stadium", rows=("A", "T"), seats=50)  # 1,000 seats
    forget_setup()
    ids = [spot.id for spot in event.sections[0].spots]
    assert event_service.set_spots_blocked(db.session, ids, SYSTEM, blocked=True) == 1000
    [entry] = entries()
    assert (entry.object_type, entry.object_id, entry.action) == (
        "section",
        event.sections[0].id,
        "block_spots",
    )
    assert entry.changes == {"spots": [None, 1000], "spot_ids": [None, f"{min(ids)}-{max(ids)}"]}
    assert (entry.actor_name, entry.source, entry.partner_id) == ("system", "system", staff["a"].id)


def test_generated_spots_are_logged_on_their_section(client, staff):
    section = staff["event_a"].sections[0]
    login(client, "alice")
    client.post(
        f"/eventsectionview/generate/{section.id}",
        data={"first_row": "C", "last_row": "D", "seats_per_row": "3", "prefix": ""},
    )
    [entry] = entries(object_type="section", object_id=section.id)
    assert (entry.action, entry.actor_name) == ("generate_spots", "alice")
    assert entry.changes == {"spots": [None, 6], "labels": [None, "C-1 .. D-3"]}


def test_a_refund_is_logged_with_who_asked_and_the_amount(client, on_sale):
    order = buy(client, on_sale, 2)
    make_user("alice", "Partner", on_sale.partner)
    forget_setup()
    login(client, "alice")
    client.post(f"/orderview/action/refund/{order['id']}")
    requested, done = entries(object_type="refund")
    assert (requested.action, done.action) == ("refund", "refund_done")
    assert {requested.actor_name, done.actor_name} == {"alice"}
    assert requested.changes["amount_cents"] == [None, order["total_cents"]]
    assert requested.changes["tickets"] == [[], sorted(t["id"] for t in order["tickets"])]
    assert done.changes["status"] == ["pending", "done"]
    assert {requested.partner_id, done.partner_id} == {on_sale.partner_id}
    assert requested.object_label == f"order {order['id']}"


def test_refunds_of_a_cancelled_event_are_logged_as_its_task(client, on_sale):
    buy(client, on_sale, 2)
    make_user("alice", "Partner", on_sale.partner)
    forget_setup()
    login(client, "alice")
    client.post(f"/eventview/cancel/{on_sale.id}", data={"reason": "Storm"})
    celery.tasks["refunds.cancelled_event"].apply(args=[on_sale.id])  # as a worker
    [cancel] = entries(object_type="event")
    assert cancel.actor_name == "alice"
    refunds = entries(object_type="refund")
    assert [e.action for e in refunds] == ["refund", "refund_done"]
    assert {(e.actor_name, e.source) for e in refunds} == {
        ("system", "task:refunds.cancelled_event")
    }


@pytest.mark.usefixtures("acquirer_fees")
def test_payouts_created_approved_paid_and_cancelled_are_logged(client, on_sale):
    payment_of(buy(client, on_sale))
    reconcile(happened_days_ago(2))
    make_user("fiona", "Finance")
    forget_setup()
    [payout_id] = create_payouts()
    login(client, "fiona")
    client.post(f"/payoutview/action/approve/{payout_id}")
    client.post(f"/payoutview/paid/{payout_id}", data={"bank_reference": "TED 1"})
    assert db.session.get(Payout, payout_id).status == PayoutStatus.PAID
    created, approved, paid = entries(object_type="payout", object_id=payout_id)
    assert (created.action, created.actor_name) == ("create", "system")
    assert created.source == "task:money.create_payouts"
    assert created.changes["amount_cents"] == [None, db.session.get(Payout, payout_id).amount_cents]
    assert (approved.action, approved.actor_name) == ("approve", "fiona")
    assert (paid.action, paid.actor_name) == ("pay", "fiona")
    assert paid.changes["bank_reference"] == [None, "TED 1"]
    assert {created.partner_id, paid.partner_id} == {on_sale.partner_id}


@pytest.mark.usefixtures("acquirer_fees")
def test_a_cancelled_payout_is_logged(client, on_sale):
    payment_of(buy(client, on_sale))
    reconcile(happened_days_ago(2))
    make_user("fiona", "Finance")
    [payout_id] = create_payouts()
    forget_setup()
    login(client, "fiona")
    client.post("/payoutview/action_post", data={"action": "cancel_payout", "rowid": payout_id})
    assert db.session.get(Payout, payout_id) is None
    [cancelled] = entries(object_type="payout", object_id=payout_id)
    assert (cancelled.action, cancelled.actor_name) == ("cancel", "fiona")
    assert cancelled.changes["status"] == ["pending", None]


def test_an_entry_is_written_in_the_transaction_of_its_change(staff):
    section = db.session.get(EventSection, staff["event_a"].sections[0].id)
    section.price_cents = 67234
    db.session.flush()
    assert len(entries(object_type="section")) == 1  # visible inside the transaction
    db.session.rollback()
    assert entries() == []
    # A change written (its entry too) in a transaction that then fails leaves no entry either.
    section = db.session.get(EventSection, staff["event_a"].sections[0].id)
    section.price_cents = 67234
    db.session.flush()
    db.session.add(EventSection(event_id=section.event_id, name=section.name, price_cents=1))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    assert entries() == []
    assert db.session.get(EventSection, section.id).price_cents == 10000


@pytest.fixture
def logged(client, staff):
    """One change on each partner's event (by its own user), and one by the platform."""
    for user, event in (("alice", staff["event_a"]), ("bob", staff["event_b"])):
        headers = api_token(client, user)
        client.put(f"/api/v1/events/{event.id}", json={"name": f"{user}'s gala"}, headers=headers)
    spot = db.session.get(EventSpot, staff["event_b"].sections[0].spots[0].id)
    event_service.set_spots_blocked(db.session, [spot.id], SYSTEM, blocked=True)
    [b_entry, *_] = entries(partner_id=staff["b"].id)
    return {"a_entry": entries(partner_id=staff["a"].id)[0].id, "b_entry": b_entry.id}


def test_a_partner_reads_its_own_entries_and_no_other_partners(client, logged):
    login(client, "alice")
    page = client.get("/auditentryview/list/").get_data(as_text=True)
    assert "alice&#39;s gala" in page and "bob&#39;s gala" not in page
    assert "block_spots" not in page
    assert client.get(f"/auditentryview/show/{logged['a_entry']}").status_code == 200
    assert client.get(f"/auditentryview/show/{logged['b_entry']}").status_code == 404
    searched = client.get(f"/auditentryview/list/?_flt_0_object_id={logged['b_entry']}")
    assert "bob&#39;s gala" not in searched.get_data(as_text=True)
    export = client.get("/auditentryview/export.csv")
    assert export.status_code == 200
    rows = list(csv.reader(io.StringIO(export.get_data(as_text=True))))
    assert len(rows) == 2 and "alice's gala" in str(rows) and "bob's gala" not in str(rows)


def test_an_admin_reads_every_entry(client, logged):
    login(client, "root")
    page = client.get("/auditentryview/list/").get_data(as_text=True)
    assert "alice&#39;s gala" in page and "bob&#39;s gala" in page and "block_spots" in page
    assert client.get(f"/auditentryview/show/{logged['b_entry']}").status_code == 200
    rows = list(csv.reader(io.StringIO(client.get("/auditentryview/export.csv").get_data(True))))
    assert len(rows) == 4


def test_gate_staff_finance_and_customers_cannot_read_the_log(client, logged):
    make_user("carl", "Customer")
    for username in ("gina", "fiona", "carl"):
        client.get("/logout/")
        login(client, username)
        assert client.get("/auditentryview/list/").status_code == 403, username
        assert client.get(f"/auditentryview/show/{logged['a_entry']}").status_code == 403
        assert client.get("/auditentryview/export.csv").status_code == 403
        assert "/auditentryview/list/" not in client.get("/eventview/list/").get_data(True)


def test_nobody_changes_an_entry_from_the_dashboard(client, logged):
    login(client, "root")
    entry_id = logged["a_entry"]
    for method, route in (
        ("POST", f"/auditentryview/edit/{entry_id}"),
        ("POST", f"/auditentryview/delete/{entry_id}"),
        ("POST", "/auditentryview/add"),
    ):
        assert client.open(route, method=method, data={"action": "x"}).status_code in (403, 404)
    assert count(AuditEntry) == 3
