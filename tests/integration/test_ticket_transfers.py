"""Named tickets and transfers (issue 19, point 3): the buyer names each ticket's holder, the
ticket's owner renames it or transfers it to another customer by e-mail within the event's
rules; a transfer reissues the code (the old one answers revoked at the gate, online, in Redis
and in the offline manifest; the new one valid with its holder's name), the recipient holds it
and the order's money stays the buyer's."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
import uuid

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import CheckIn, Event, OutboxMail, Ticket
from app.models.base import utcnow
from app.services import checkin, refunds, tickets
from app.services.mail import messages
from app.services.payments import gateway
from app.services.scoping import SYSTEM
from tests.support.builders import make_partner
from tests.support.gate import device, logged, open_event, result, scan
from tests.support.shop import buy, card_token, sign_up

BRUNO = "bruno@example.com"


@pytest.fixture
def partner():
    return make_partner("Aurora")


@pytest.fixture
def event(partner):
    return open_event(partner, refund_window_hours=1)


def _customer_id(email: str) -> int:
    from app.models import Customer

    return db.session.scalar(select(Customer.id).where(Customer.email == email))


def transfer(client, headers, ticket_id, email=BRUNO):
    return client.post(
        f"/api/v1/tickets/{ticket_id}/transfer", json={"email": email}, headers=headers
    )


def my_tickets(client, headers):
    response = client.get("/api/v1/tickets/", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["result"]


def test_a_transfer_reissues_the_code_old_revoked_new_valid_with_the_new_holder(
    client, store, partner, event
):
    ana = sign_up(client)
    bruno = sign_up(client, BRUNO, "Bruno Lima")
    order = buy(client, event, buyer=ana)
    given, kept = order["tickets"]
    auth = device(partner, event)
    # The first scan arms the event (Redis): the transfer must reach armed gates too.
    assert result(scan(client, auth, kept["code"]))["result"] == "valid"

    response = transfer(client, ana, given["id"])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()["result"]
    assert body["status"] == "transferred" and body["to"] == {"name": "Bruno Lima", "email": BRUNO}
    [received] = my_tickets(client, bruno)
    assert received["id"] == body["replaced_by"] != given["id"]
    assert received["code"] != given["code"]
    assert received["holder_name"] == "Bruno Lima" and received["order_id"] is None
    assert (received["section"], received["spot"]) == (given["section"], given["spot"])

    old = result(scan(client, auth, given["code"], gate="North"))
    assert old["result"] == "revoked"
    new = result(scan(client, auth, received["code"], gate="North"))
    assert new["result"] == "valid"
    assert new["ticket_id"] == received["id"] and new["holder_name"] == "Bruno Lima"
    manifest = client.get(f"/api/v1/checkin/events/{event.id}/manifest", headers=auth)
    revoked = manifest.get_json()["revoked"]
    assert given["id"] in revoked and received["id"] not in revoked
    # The scan log names the ticket's holder now, for the old code's scan too.
    rows = logged()
    assert [(r.result, r.holder) for r in rows] == [
        ("valid", "Ana Souza"),
        ("revoked", "Bruno Lima"),
        ("valid", "Bruno Lima"),
    ]


def test_the_recipient_holds_it_the_buyer_keeps_the_order_but_not_its_code(client, event):
    ana = sign_up(client)
    bruno = sign_up(client, BRUNO, "Bruno Lima")
    carla = sign_up(client, "carla@example.com", "Carla Dias")
    order = buy(client, event, buyer=ana)
    given = order["tickets"][0]
    new_id = transfer(client, ana, given["id"]).get_json()["result"]["replaced_by"]

    shown = client.get(f"/api/v1/orders/{order['id']}", headers=ana).get_json()["result"]
    by_id = {t["id"]: t for t in shown["tickets"]}
    assert by_id[new_id]["transferred"] is True and by_id[new_id]["code"] is None
    assert by_id[given["id"]]["status"] == "transferred" and by_id[given["id"]]["code"] is None
    assert shown["total_cents"] == order["total_cents"] and shown["status"] == "paid"
    assert [t["id"] for t in my_tickets(client, ana)] == [order["tickets"][1]["id"]]
    assert client.get(f"/api/v1/tickets/{new_id}", headers=ana).status_code == 404
    # The buyer's PDF prints only the ticket they still hold.
    pdf = client.get(f"/api/v1/orders/{order['id']}/tickets.pdf", headers=ana)
    assert pdf.status_code == 200

    # The new owner hands it on again; the buyer cannot touch it.
    assert transfer(client, ana, new_id, "carla@example.com").status_code == 404
    again = transfer(client, bruno, new_id, "carla@example.com")
    assert again.status_code == 200, again.get_json()
    assert my_tickets(client, bruno) == []
    [carlas] = my_tickets(client, carla)
    assert carlas["holder_name"] == "Carla Dias"
    db.session.expire_all()
    spot = db.session.get(Ticket, given["id"]).spot_id
    statuses = db.session.execute(
        select(Ticket.status).where(Ticket.spot_id == spot).order_by(Ticket.id)
    ).scalars()
    assert list(statuses) == ["transferred", "transferred", "valid"]
    # The buyer's self-service cancellation would void Carla's ticket: refused.
    cancel = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=ana)
    assert cancel.status_code == 409 and cancel.get_json()["error"] == "ticket_transferred"


def test_a_refund_of_a_transferred_ticket_goes_to_the_order_card_and_revokes_the_new_code(
    client, store, partner, event
):
    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    order = buy(client, event, buyer=ana)
    new_id = transfer(client, ana, order["tickets"][0]["id"]).get_json()["result"]["replaced_by"]
    new_code = db.session.get(Ticket, new_id).code
    refunded = refunds.refund_order(db.session, gateway(), order["id"], SYSTEM)
    assert refunded.status == "refunded"
    db.session.expire_all()
    payment = db.session.get(Ticket, new_id).order.payments[0]
    assert payment.status == "refunded" and payment.refunded_cents == order["total_cents"]
    assert db.session.get(Ticket, new_id).status == "revoked"
    answer = result(scan(client, device(partner, event), new_code))
    assert answer["result"] == "revoked"


def test_renaming_keeps_the_code_and_the_gate_shows_the_new_name(client, store, partner, event):
    ana = sign_up(client)
    order = buy(client, event, buyer=ana)
    ticket, other = order["tickets"]
    auth = device(partner, event)
    assert result(scan(client, auth, other["code"]))["result"] == "valid"  # arms the event
    response = client.put(
        f"/api/v1/tickets/{ticket['id']}", json={"holder_name": "  Davi   Rocha "}, headers=ana
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()["result"]
    assert body["holder_name"] == "Davi Rocha" and body["code"] == ticket["code"]
    answer = result(scan(client, auth, ticket["code"]))
    assert answer["result"] == "valid" and answer["holder_name"] == "Davi Rocha"


def test_what_the_api_refuses(client, event):
    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    carla = sign_up(client, "carla@example.com", "Carla Dias")
    order = buy(client, event, buyer=ana)
    ticket = order["tickets"][0]
    # Another customer's ticket does not exist for them.
    assert transfer(client, carla, ticket["id"]).status_code == 404
    put = client.put(f"/api/v1/tickets/{ticket['id']}", json={"holder_name": "X"}, headers=carla)
    assert put.status_code == 404
    assert client.get(f"/api/v1/tickets/{ticket['id']}", headers=carla).status_code == 404
    # A bad address, no address, one's own: 400; nobody with that address: 422.
    for email in ("not-an-email", "", None, 42):
        bad = transfer(client, ana, ticket["id"], email)
        assert bad.status_code == 400 and bad.get_json()["field"] == "email", bad.get_json()
    assert transfer(client, ana, ticket["id"], "ana@example.com").status_code == 400
    unknown = transfer(client, ana, ticket["id"], "nobody@example.com")
    assert unknown.status_code == 422 and unknown.get_json()["error"] == "unknown_recipient"
    for name in ("", "   ", "x" * 151, None, ["a"]):
        put = client.put(f"/api/v1/tickets/{ticket['id']}", json={"holder_name": name}, headers=ana)
        assert put.status_code == 400, (name, put.get_json())
    # An address in another case is the same customer.
    assert transfer(client, ana, ticket["id"], "BRUNO@Example.com").status_code == 200
    # The handed-on ticket is not handed on twice.
    twice = transfer(client, ana, ticket["id"], "carla@example.com")
    assert twice.status_code == 409 and twice.get_json()["error"] == "not_transferable"


def test_a_used_ticket_no_longer_changes_hands(client, store, partner, event):
    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    ticket = buy(client, event, buyer=ana)["tickets"][0]
    assert result(scan(client, device(partner, event), ticket["code"]))["result"] == "valid"
    used = transfer(client, ana, ticket["id"])
    assert used.status_code == 409 and used.get_json()["error"] == "ticket_used"
    put = client.put(f"/api/v1/tickets/{ticket['id']}", json={"holder_name": "X"}, headers=ana)
    assert put.status_code == 409 and put.get_json()["error"] == "ticket_used"
    # Still admitted as it was: the refused transfer revoked nothing.
    assert db.session.get(Ticket, ticket["id"]).status == "valid"
    if store == "redis":
        assert not checkin.redis_client().sismember(f"ck:rv:{event.id}", ticket["id"])


def test_the_partners_rules_allowed_or_not_and_until_when(client, event):
    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    first, second = buy(client, event, buyer=ana)["tickets"]
    row = db.session.get(Event, event.id)
    row.transfers_allowed = False
    db.session.commit()
    refused = transfer(client, ana, first["id"])
    assert refused.status_code == 409 and refused.get_json()["error"] == "transfers_not_allowed"
    put = client.put(f"/api/v1/tickets/{first['id']}", json={"holder_name": "X"}, headers=ana)
    assert put.status_code == 409 and put.get_json()["error"] == "transfers_not_allowed"
    row = db.session.get(Event, event.id)
    row.transfers_allowed = True
    # The event starts in 30 days: transfers closed 31 days before it.
    row.transfers_until_hours = 31 * 24
    db.session.commit()
    closed = transfer(client, ana, second["id"])
    assert closed.status_code == 409 and closed.get_json()["error"] == "transfers_closed"
    assert closed.get_json()["deadline"].endswith("-03:00")
    row = db.session.get(Event, event.id)
    row.transfers_until_hours = 29 * 24
    db.session.commit()
    assert transfer(client, ana, second["id"]).status_code == 200


def test_the_default_rules_close_transfers_two_hours_before_the_start(client, partner):
    event = open_event(partner)
    event.starts_at = utcnow() + dt.timedelta(hours=1, minutes=59)
    db.session.commit()
    assert (event.transfers_allowed, event.transfers_until_hours) == (True, 2)
    assert event.named_tickets is False
    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    ticket = buy(client, event, buyer=ana)["tickets"][0]
    assert transfer(client, ana, ticket["id"]).get_json()["error"] == "transfers_closed"


def test_a_named_event_takes_each_holder_at_checkout(client, partner):
    event = open_event(partner, named_tickets=True)
    ana = sign_up(client)
    spot_ids = [s.id for s in event.sections[0].spots[:2]]
    hold = client.post(
        "/api/v1/holds/", json={"event_id": event.id, "spot_ids": spot_ids}, headers=ana
    ).get_json()["result"]
    token = card_token(client)

    def checkout(**body):
        return client.post(
            f"/api/v1/holds/{hold['id']}/checkout",
            json={"card_token": token, **body},
            headers={**ana, "Idempotency-Key": uuid.uuid4().hex},
        )

    missing = checkout()
    assert missing.status_code == 400 and missing.get_json()["field"] == "holder_names"
    assert checkout(holder_names=["Only One"]).status_code == 400
    assert checkout(holder_names=["Ana", ""]).status_code == 400
    assert checkout(holder_names="Ana, Bia").status_code == 400
    paid = checkout(holder_names=["Ana Souza", "Bia Nunes"])
    assert paid.status_code == 201, paid.get_json()
    names = [t["holder_name"] for t in paid.get_json()["result"]["tickets"]]
    assert names == ["Ana Souza", "Bia Nunes"]


def test_an_unnamed_event_names_every_ticket_after_the_buyer_unless_told(client, event):
    ana = sign_up(client)
    order = buy(client, event, buyer=ana)
    assert {t["holder_name"] for t in order["tickets"]} == {"Ana Souza"}


def test_a_transfer_writes_both_mails_in_its_transaction(client, app, event):
    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    ticket = buy(client, event, buyer=ana)["tickets"][0]
    new_id = transfer(client, ana, ticket["id"]).get_json()["result"]["replaced_by"]
    mails = {
        m.kind: m
        for m in db.session.scalars(
            select(OutboxMail).where(OutboxMail.kind.in_(["ticket_received", "ticket_transferred"]))
        )
    }
    assert mails["ticket_received"].to_address == BRUNO
    assert mails["ticket_received"].params == {"ticket_id": new_id, "from_ticket_id": ticket["id"]}
    assert mails["ticket_transferred"].to_address == "ana@example.com"
    received = messages.render(db.session, mails["ticket_received"])
    assert "Bruno Lima" in received.text and "Ana Souza" in received.text
    assert [i.mimetype for i in received.inline] == ["image/png"]
    assert received.attachments[0].data.startswith(b"%PDF")
    notice = messages.render(db.session, mails["ticket_transferred"])
    assert BRUNO in notice.text and not notice.attachments


def test_two_transfers_of_one_ticket_at_once_make_one(client, app, event):
    """Real connections from two threads, each handing the same ticket to someone else."""
    ana = sign_up(client)
    recipients = [f"r{n}@example.com" for n in range(6)]
    for email in recipients:
        sign_up(client, email, "R")
    ticket_id = buy(client, event, buyer=ana)["tickets"][0]["id"]
    ana_id = _customer_id("ana@example.com")
    outcomes: list[str] = []
    barrier = threading.Barrier(len(recipients))

    def hand_on(email: str) -> None:
        with app.app_context():
            barrier.wait()
            try:
                tickets.transfer(db.session, ana_id, ticket_id, email)
                outcomes.append("done")
            except tickets.NotTransferable:
                outcomes.append("refused")
            except Exception as exc:  # noqa: BLE001 - a lock not had in time: busy
                outcomes.append(type(exc).__name__)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=hand_on, args=(e,)) for e in recipients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("done") == 1, outcomes
    assert set(outcomes) <= {"done", "refused", "Busy"}
    db.session.expire_all()
    spot_id = db.session.get(Ticket, ticket_id).spot_id
    valid = select(func.count()).where(Ticket.spot_id == spot_id, Ticket.status == "valid")
    assert db.session.scalar(valid) == 1
    received = (
        select(func.count()).select_from(OutboxMail).where(OutboxMail.kind == "ticket_received")
    )
    assert db.session.scalar(received) == 1


def test_a_scan_and_a_transfer_at_once_never_admit_both_codes(client, app, store, partner, event):
    """A gate scans the old code while its owner transfers it: either the entry came first
    (the transfer is refused) or the revocation did (the scan answers revoked)."""
    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    order = buy(client, event, buyer=ana)
    ticket = order["tickets"][0]
    ana_id = _customer_id("ana@example.com")
    _, token = checkin.register_device(db.session, _actor(partner), "Lane", [event.id])
    with app.app_context():
        scanner = checkin.scanner_for_token(db.session, token)
        if store == "redis":
            checkin.arm_event(db.session, event.id)
    for _ in range(3):
        outcome: dict[str, str] = {}
        barrier = threading.Barrier(2)

        def gate(outcome: dict[str, str] = outcome, barrier: threading.Barrier = barrier) -> None:
            with app.app_context():
                request = checkin.parse_scan(
                    {"code": ticket["code"], "gate": "Lane", "nonce": uuid.uuid4().hex}
                )
                barrier.wait()
                outcome["scan"] = checkin.scan(db.session, scanner, request)["result"]
                db.session.remove()

        def owner(outcome: dict[str, str] = outcome, barrier: threading.Barrier = barrier) -> None:
            with app.app_context():
                barrier.wait()
                try:
                    tickets.transfer(db.session, ana_id, ticket["id"], BRUNO)
                    outcome["transfer"] = "done"
                except Exception as exc:  # noqa: BLE001
                    outcome["transfer"] = type(exc).__name__
                finally:
                    db.session.remove()

        threads = [threading.Thread(target=gate), threading.Thread(target=owner)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        admitted = outcome["scan"] in ("valid", "already_used")
        assert admitted != (outcome["transfer"] == "done"), outcome
        if outcome["transfer"] == "done":
            return
    # The scan won each time: the ticket is used and stays with its buyer.
    db.session.expire_all()
    assert db.session.get(Ticket, ticket["id"]).status == "valid"


def _actor(partner):
    from tests.support.builders import PartnerActor

    return PartnerActor(partner)


def test_the_scan_log_lists_the_holder_column(client, partner, event):
    ana = sign_up(client)
    ticket = buy(client, event, buyer=ana)["tickets"][0]
    result(scan(client, device(partner, event), ticket["code"]))
    [row] = db.session.scalars(select(CheckIn)).all()
    assert row.holder == "Ana Souza"


def test_the_openapi_spec_describes_renaming_and_transfers(client):
    from tests.support.builders import api_token, make_user

    make_user("root", "Admin")
    paths = client.get("/api/v1/_openapi", headers=api_token(client, "root")).get_json()["paths"]
    assert "get" in paths["/api/v1/tickets/"]
    assert {"get", "put"} <= set(paths["/api/v1/tickets/{pk}"])
    transfer_doc = paths["/api/v1/tickets/{pk}/transfer"]["post"]
    assert {"200", "400", "404", "409", "422"} <= set(transfer_doc["responses"])
    checkout = paths["/api/v1/holds/{pk}/checkout"]["post"]["requestBody"]
    schema = checkout["content"]["application/json"]["schema"]
    assert "holder_names" in schema["properties"]


def test_a_transfer_writes_the_partners_ticket_transferred_webhook(client, partner, event):
    from tests.support.webhooks import deliveries, endpoint

    hook = endpoint(partner, "http://127.0.0.1:9/hooks", ["ticket.transferred"])
    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    ticket = buy(client, event, buyer=ana)["tickets"][0]
    refused = transfer(client, ana, ticket["id"], "nobody@example.com")
    assert refused.status_code == 422
    assert deliveries() == []  # a refused transfer writes nothing
    new_id = transfer(client, ana, ticket["id"]).get_json()["result"]["replaced_by"]
    [delivery] = deliveries()
    assert (delivery.endpoint_id, delivery.kind) == (hook.id, "ticket.transferred")
    data = delivery.payload
    assert (data["ticket_id"], data["previous_ticket_id"]) == (new_id, ticket["id"])


def test_a_transfer_committed_before_the_cancellations_claim_stops_it(
    client, app, monkeypatch, event
):
    """The buyer cancels while a transfer of one of the order's tickets commits between the
    cancellation's look at the order and its claim (real connections, another thread): the
    cancellation is refused under the order's lock, the recipient keeps a valid ticket and the
    buyer gets no money back."""
    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    order = buy(client, event, buyer=ana)
    given = order["tickets"][0]
    ana_id = _customer_id("ana@example.com")
    locked_order = refunds._locked_order
    handed_on: dict[str, int] = {}

    def transfer_first(session, order_id, actor):
        if not handed_on:

            def hand_on() -> None:
                with app.app_context():
                    try:
                        handed_on["id"] = tickets.transfer(
                            db.session, ana_id, given["id"], BRUNO
                        ).id
                    finally:
                        db.session.remove()

            thread = threading.Thread(target=hand_on)
            thread.start()
            thread.join()
        return locked_order(session, order_id, actor)

    monkeypatch.setattr(refunds, "_locked_order", transfer_first)
    with pytest.raises(refunds.TicketTransferred):
        refunds.cancel_by_customer(db.session, gateway(), ana_id, order["id"])
    db.session.rollback()
    assert "id" in handed_on
    received = db.session.get(Ticket, handed_on["id"])
    assert received.status == "valid" and received.owner_id == _customer_id(BRUNO)
    assert received.order.status == "paid"
    assert received.order.payments[0].refunded_cents == 0


def test_the_partners_daily_summary_counts_a_transferred_ticket_once(client, partner, event):
    from app.models import local_time
    from app.services.mail import partner_mails

    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    sign_up(client, "carla@example.com", "Carla Dias")
    order = buy(client, event, buyer=ana)
    new_id = transfer(client, ana, order["tickets"][0]["id"]).get_json()["result"]["replaced_by"]
    # Bruno passes it on again: three rows for one sold ticket, two tickets sold in all.
    bruno_id = _customer_id(BRUNO)
    tickets.transfer(db.session, bruno_id, new_id, "carla@example.com")
    paid_at = db.session.get(Ticket, new_id).order.paid_at
    day = local_time.to_local(paid_at, partner_mails.SUMMARY_ZONE).date()
    [line] = partner_mails.daily_figures(db.session, partner.id, day)
    assert line.tickets == 2
    assert line.gross_cents == order["total_cents"]


def test_an_unnamed_event_takes_a_blank_holder_as_the_buyer_in_the_api_and_the_page(client, event):
    from tests.support.pages import card_form, hold_form, page_sign_up, path_of, pay_form, text

    ana = sign_up(client)
    hold = client.post(
        "/api/v1/holds/",
        json={"event_id": event.id, "section_id": event.sections[0].id, "quantity": 2},
        headers=ana,
    ).get_json()["result"]
    paid = client.post(
        f"/api/v1/holds/{hold['id']}/checkout",
        json={"card_token": card_token(client), "holder_names": ["", "Bia Nunes"]},
        headers={**ana, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert paid.status_code == 201, paid.get_json()
    names = [t["holder_name"] for t in paid.get_json()["result"]["tickets"]]
    assert names == ["Ana Souza", "Bia Nunes"]

    # The pay page's optional fields, both cleared.
    page_sign_up(client, "carla@example.com", "Carla Dias")
    hold_id = hold_form(client, event)
    form = pay_form(text(client.get(path_of(card_form(client, hold_id)))))
    done = client.post(f"/holds/{hold_id}/checkout", data={**form, "holder_names": ["", "  "]})
    assert done.status_code == 302 and path_of(done).startswith("/orders/"), text(done)[:300]
    order_id = int(path_of(done).rsplit("/", 1)[1])
    held = db.session.scalars(select(Ticket.holder_name).where(Ticket.order_id == order_id))
    assert list(held) == ["Carla Dias", "Carla Dias"]


def test_the_buyers_order_page_names_whom_the_buyer_gave_it_to_not_later_holders(client, event):
    from tests.support.pages import buy_through_pages, page_sign_up, text

    sign_up(client, BRUNO, "Bruno Lima")
    sign_up(client, "carla@example.com", "Carla Dias")
    page_sign_up(client)
    _, order_id = buy_through_pages(client, event)
    ana_id = _customer_id("ana@example.com")
    first = db.session.scalars(select(Ticket.id).where(Ticket.order_id == order_id)).first()
    to_bruno = tickets.transfer(db.session, ana_id, first, BRUNO)
    page = text(client.get(f"/orders/{order_id}"))
    assert "Transferred to Bruno Lima (bruno@example.com)" in page
    tickets.transfer(db.session, _customer_id(BRUNO), to_bruno.id, "carla@example.com")
    page = text(client.get(f"/orders/{order_id}"))
    assert "Transferred to Bruno Lima (bruno@example.com)" in page
    assert "Carla Dias" not in page and "carla@example.com" not in page


def test_the_buyers_order_in_the_api_names_whom_the_buyer_gave_it_to_not_later_holders(
    client, event
):
    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    sign_up(client, "carla@example.com", "Carla Dias")
    order = buy(client, event, buyer=ana)
    new_id = transfer(client, ana, order["tickets"][0]["id"]).get_json()["result"]["replaced_by"]
    tickets.transfer(db.session, _customer_id(BRUNO), new_id, "carla@example.com")
    shown = client.get(f"/api/v1/orders/{order['id']}", headers=ana).get_json()["result"]
    held_by_others = [t for t in shown["tickets"] if t["transferred"] and t["status"] == "valid"]
    assert [t["holder_name"] for t in held_by_others] == ["Bruno Lima"]
    assert "Carla Dias" not in str(shown)


def test_a_recipient_passing_a_ticket_on_gets_a_notice_linking_to_their_tickets(client, event):
    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    sign_up(client, "carla@example.com", "Carla Dias")
    order = buy(client, event, buyer=ana)
    new_id = transfer(client, ana, order["tickets"][0]["id"]).get_json()["result"]["replaced_by"]
    tickets.transfer(db.session, _customer_id(BRUNO), new_id, "carla@example.com")
    notices = {
        m.to_address: messages.render(db.session, m)
        for m in db.session.scalars(
            select(OutboxMail).where(OutboxMail.kind == "ticket_transferred")
        )
    }
    order_link = f"/orders/{order['id']}"
    anas, brunos = notices["ana@example.com"], notices[BRUNO]
    assert order_link in anas.text and order_link in anas.html
    # Bruno has no order of it (that page is 404 for him): his notice links to his tickets.
    assert order_link not in brunos.text and order_link not in brunos.html
    assert re.search(r"https?://[^/\s]+/orders\n", brunos.text)
    assert re.search(r'href="https?://[^/"]+/orders"', brunos.html)
    assert "card that paid" not in brunos.text


def test_a_commit_that_raises_after_committing_keeps_the_old_code_revoked(
    client, store, monkeypatch, partner, event
):
    """The COMMIT reaches the database but its answer is lost (the connection cut): the
    transfer happened, so Redis's gates must keep refusing the old code."""
    from sqlalchemy.exc import OperationalError

    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    order = buy(client, event, buyer=ana)
    given, kept = order["tickets"]
    auth = device(partner, event)
    assert result(scan(client, auth, kept["code"]))["result"] == "valid"  # arms it (Redis)
    session = db.session()
    commit = session.commit

    def commit_then_fail() -> None:
        commit()
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(session, "commit", commit_then_fail)
    outcome = "raised"
    with contextlib.suppress(OperationalError):
        tickets.transfer(db.session, _customer_id("ana@example.com"), given["id"], BRUNO)
        outcome = "done"
    monkeypatch.undo()
    db.session.expire_all()
    old = db.session.get(Ticket, given["id"])
    assert old.status == "transferred"
    new_code = old.replaced_by.code
    assert result(scan(client, auth, given["code"], gate="South"))["result"] == "revoked"
    assert result(scan(client, auth, new_code, gate="South"))["result"] == "valid"
    assert outcome == "done"  # it did happen: the owner is told so


def test_a_commit_that_fails_gives_the_old_code_back(client, store, monkeypatch, partner, event):
    from sqlalchemy.exc import OperationalError

    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    order = buy(client, event, buyer=ana)
    given, kept = order["tickets"]
    auth = device(partner, event)
    assert result(scan(client, auth, kept["code"]))["result"] == "valid"
    session = db.session()

    def fail() -> None:
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(session, "commit", fail)
    with pytest.raises(OperationalError):
        tickets.transfer(db.session, _customer_id("ana@example.com"), given["id"], BRUNO)
    monkeypatch.undo()
    db.session.expire_all()
    assert db.session.get(Ticket, given["id"]).status == "valid"
    assert result(scan(client, auth, given["code"], gate="South"))["result"] == "valid"


def test_the_migration_goes_down_with_transferred_tickets_as_revoked_and_up_again(client, event):
    """Below transfers there is no status "transferred": the old code is a revoked one."""
    from alembic.script import ScriptDirectory
    from flask import current_app
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    ana = sign_up(client)
    sign_up(client, BRUNO, "Bruno Lima")
    given = buy(client, event, buyer=ana)["tickets"][0]
    assert transfer(client, ana, given["id"]).status_code == 200
    migrate = current_app.extensions["migrate"].migrate
    below = ScriptDirectory.from_config(migrate.get_config()).get_revision("f6b1d3a8c972")
    db.session.remove()  # no transaction of the test's may hold the tables
    try:
        downgrade(revision=below.down_revision)
        statuses = db.session.execute(text("SELECT id, status FROM ticket ORDER BY id")).all()
        assert [tuple(row) for row in statuses] == [
            (given["id"], "revoked"),
            (given["id"] + 1, "valid"),
            (given["id"] + 2, "valid"),
        ]
    finally:
        db.session.remove()
        upgrade()
    assert db.session.get(Ticket, given["id"]).status == "revoked"
