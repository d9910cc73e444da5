"""The waiting list of a sold-out event (issue #19, point 2): customers join when what they ask
for is sold out; spots that come back (expired holds, refunds, spots unblocked) are offered in
order as a hold reserved for the first in line, announced by e-mail; an unclaimed offer goes to
the next; ordinary buyers are refused while anyone waits; the partner sees the lists."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import (
    EventSpot,
    Hold,
    HoldStatus,
    OutboxMail,
    SpotStatus,
    Ticket,
    WaitlistEntry,
    WaitlistStatus,
)
from app.models.base import utcnow
from app.models.local_time import format_local
from app.models.promo import PromoCode
from app.services import events as event_service
from app.services import waitlist
from app.services.mail import messages
from app.services.purchase import sold_out
from app.services.purchase.release import release_expired_holds
from app.services.scoping import SYSTEM
from tests.support.builders import login, make_event, make_partner, make_user, record_sale
from tests.support.shop import DECLINED, buy, card_token, expire, pay, sign_up


@pytest.fixture
def small_event() -> Any:
    """A published event of one section of 4 seats (A-1 to A-4) at BRL 100.00."""
    event = make_event(make_partner("Aurora"), rows=("A", "A"), seats=4)
    event.publish()
    db.session.commit()
    sold_out.forget()
    return event


def _customer(client) -> dict[str, str]:
    return sign_up(client, f"{uuid.uuid4().hex[:10]}@example.com")


def _hold(client, event, spots, headers=None) -> dict[str, Any]:
    """A customer (a new one by default) holds these spots; returns the hold."""
    headers = headers or _customer(client)
    spot_ids = [s.id for s in spots]
    response = client.post(
        "/api/v1/holds/", json={"event_id": event.id, "spot_ids": spot_ids}, headers=headers
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["result"]


def _hold_all(client, event) -> dict[str, Any]:
    """A customer holds every seat of the event's section; returns the hold."""
    return _hold(client, event, event.sections[0].spots)


def _join(client, event, headers, **body) -> Any:
    return client.post(f"/api/v1/waitlist/{event.id}", json=body, headers=headers)


def _entry(entry_id: int) -> WaitlistEntry:
    db.session.expire_all()
    return db.session.get(WaitlistEntry, entry_id)


def _offer_mails(entry_id: int) -> list[OutboxMail]:
    return [
        m
        for m in db.session.scalars(select(OutboxMail).where(OutboxMail.kind == "waitlist_offer"))
        if m.params["entry_id"] == entry_id
    ]


def _sold_out_with_line(client, event, *quantities: int) -> tuple[dict[str, Any], list[int]]:
    """The section held whole by one customer, then one waiting customer per quantity; the
    hold and the entries' ids."""
    held = _hold_all(client, event)
    entries = []
    for quantity in quantities:
        joined = _join(client, event, _customer(client), quantity=quantity)
        assert joined.status_code == 201, joined.get_json()
        entries.append(joined.get_json()["result"]["id"])
    return held, entries


# -- joining and leaving -----------------------------------------------------------------------


def test_joining_is_refused_while_spots_are_on_sale(client, small_event):
    answer = _join(client, small_event, _customer(client), quantity=2)
    assert answer.status_code == 409
    assert answer.get_json()["error"] == "spots_on_sale"
    assert db.session.scalar(select(WaitlistEntry.id)) is None


def test_a_customer_joins_a_sold_out_event_once(client, small_event):
    _hold_all(client, small_event)
    headers = _customer(client)
    first = _join(client, small_event, headers, quantity=2)
    assert first.status_code == 201, first.get_json()
    entry = first.get_json()["result"]
    assert (entry["status"], entry["position"], entry["quantity"]) == ("waiting", 1, 2)
    again = _join(client, small_event, headers, quantity=3)
    assert again.status_code == 200
    assert again.get_json()["result"]["id"] == entry["id"]
    assert again.get_json()["result"]["quantity"] == 2  # the entry as it stands
    second = _join(client, small_event, _customer(client))
    assert second.get_json()["result"]["position"] == 2
    mine = client.get("/api/v1/waitlist/", headers=headers).get_json()["result"]
    assert [e["id"] for e in mine] == [entry["id"]]


def test_a_customer_leaves_and_the_next_moves_up(client, small_event):
    _hold_all(client, small_event)
    first, second = _customer(client), _customer(client)
    _join(client, small_event, first)
    second_id = _join(client, small_event, second).get_json()["result"]["id"]
    left = client.delete(f"/api/v1/waitlist/{small_event.id}", headers=first)
    assert left.status_code == 200
    assert [e["status"] for e in left.get_json()["result"]] == ["left"]
    assert client.delete(f"/api/v1/waitlist/{small_event.id}", headers=first).status_code == 404
    assert waitlist.position_of(db.session, _entry(second_id)) == 1


# -- offers when spots come back ---------------------------------------------------------------


def test_an_expired_hold_is_offered_to_the_first_in_line(client, small_event, tasks_in_process):
    held, (first, second, third) = _sold_out_with_line(client, small_event, 2, 1, 3)
    expire(held["id"])
    assert release_expired_holds(db.session) == 1  # the sweep's commit sends the offer task
    offered = _entry(first)
    assert offered.status == WaitlistStatus.OFFERED
    hold = db.session.get(Hold, offered.hold_id)
    assert hold.customer_id == offered.customer_id and hold.status == HoldStatus.ACTIVE
    assert len(hold.spots) == 2
    minutes = small_event.waitlist_offer_minutes
    assert (hold.expires_at - hold.created_at).total_seconds() == minutes * 60
    assert offered.offer_expires_at == hold.expires_at
    [mail] = _offer_mails(first)
    assert mail.to_address == offered.customer.email
    # The second wants 1 of the 2 left: served. The third wants 3: waits, the last spot kept.
    assert _entry(second).status == WaitlistStatus.OFFERED
    assert _entry(third).status == WaitlistStatus.WAITING
    free = db.session.scalars(
        select(EventSpot).where(EventSpot.status == SpotStatus.AVAILABLE)
    ).all()
    assert len(free) == 1
    buyer = client.post(
        "/api/v1/holds/",
        json={"event_id": small_event.id, "section_id": small_event.sections[0].id, "quantity": 1},
        headers=_customer(client),
    )
    assert buyer.status_code == 409 and buyer.get_json()["error"] == "waitlist"


def test_the_line_is_strict_the_first_waits_for_enough_spots(client, small_event):
    """Nobody behind the first in line jumps ahead when fewer spots came back than they want."""
    buyer = _customer(client)
    one = _hold(client, small_event, small_event.sections[0].spots[:1], buyer)
    _hold(client, small_event, small_event.sections[0].spots[1:])
    first = _join(client, small_event, _customer(client), quantity=2).get_json()["result"]["id"]
    second = _join(client, small_event, _customer(client), quantity=1).get_json()["result"]["id"]
    client.delete(f"/api/v1/holds/{one['id']}", headers=buyer)  # one spot back
    assert waitlist.make_offers(db.session, small_event.id) == 0
    assert _entry(first).status == WaitlistStatus.WAITING
    assert _entry(second).status == WaitlistStatus.WAITING


def test_an_unclaimed_offer_goes_to_the_next_in_line(client, small_event, tasks_in_process):
    held, (first, second) = _sold_out_with_line(client, small_event, 4, 4)
    expire(held["id"])
    release_expired_holds(db.session)
    offer = _entry(first)
    assert offer.status == WaitlistStatus.OFFERED
    expire(offer.hold_id)  # the first never pays
    release_expired_holds(db.session)
    assert _entry(first).status == WaitlistStatus.EXPIRED
    assert _entry(first).ended_at is not None
    nxt = _entry(second)
    assert nxt.status == WaitlistStatus.OFFERED
    assert len(db.session.get(Hold, nxt.hold_id).spots) == 4


def test_an_offer_the_customer_releases_goes_to_the_next(client, small_event, tasks_in_process):
    held, (first, second) = _sold_out_with_line(client, small_event, 4, 4)
    expire(held["id"])
    release_expired_holds(db.session)
    offer = _entry(first)
    headers = _headers_of(client, offer)
    assert client.delete(f"/api/v1/holds/{offer.hold_id}", headers=headers).status_code == 200
    assert _entry(first).status == WaitlistStatus.EXPIRED
    assert _entry(second).status == WaitlistStatus.OFFERED


def test_leaving_with_an_offer_releases_it_to_the_next(client, small_event, tasks_in_process):
    held, (first, second) = _sold_out_with_line(client, small_event, 4, 4)
    expire(held["id"])
    release_expired_holds(db.session)
    offer = _entry(first)
    left = client.delete(f"/api/v1/waitlist/{small_event.id}", headers=_headers_of(client, offer))
    assert left.status_code == 200
    assert _entry(first).status == WaitlistStatus.LEFT
    assert db.session.get(Hold, offer.hold_id).status == HoldStatus.RELEASED
    assert _entry(second).status == WaitlistStatus.OFFERED


def test_the_offered_customer_pays_and_the_entry_converts(client, small_event, tasks_in_process):
    held, (first,) = _sold_out_with_line(client, small_event, 2)
    expire(held["id"])
    release_expired_holds(db.session)
    offer = _entry(first)
    headers = _headers_of(client, offer)
    paid = pay(client, headers, offer.hold_id, card_token(client))
    assert paid.status_code == 201, paid.get_json()
    assert len(paid.get_json()["result"]["tickets"]) == 2
    assert _entry(first).status == WaitlistStatus.CONVERTED


def test_a_refund_offers_the_spots_to_the_line(client, small_event, tasks_in_process):
    from app.services import refunds
    from app.services.payments import gateway

    order = buy(client, small_event, 2)
    for spot in small_event.sections[0].spots:
        if spot.status == SpotStatus.AVAILABLE:
            record_sale(spot)
    first = _join(client, small_event, _customer(client), quantity=2).get_json()["result"]["id"]
    refunds.refund_order(db.session, gateway(), order["id"], SYSTEM)
    offered = _entry(first)
    assert offered.status == WaitlistStatus.OFFERED
    refunded = set(db.session.scalars(select(Ticket.spot_id).where(Ticket.order_id == order["id"])))
    assert {s.id for s in db.session.get(Hold, offered.hold_id).spots} == refunded


def test_unblocked_spots_are_offered_to_the_line(client, small_event, tasks_in_process):
    spots = small_event.sections[0].spots
    event_service.set_spots_blocked(db.session, [spots[0].id], SYSTEM, blocked=True)
    for spot in spots[1:]:
        record_sale(spot)
    first = _join(client, small_event, _customer(client)).get_json()["result"]["id"]
    event_service.set_spots_blocked(db.session, [spots[0].id], SYSTEM, blocked=False)
    offered = _entry(first)
    assert offered.status == WaitlistStatus.OFFERED
    assert [s.label for s in db.session.get(Hold, offered.hold_id).spots] == ["A-1"]


def test_spots_added_by_the_partner_are_offered_to_the_line(client, small_event, tasks_in_process):
    _hold_all(client, small_event)
    first = _join(client, small_event, _customer(client), quantity=2).get_json()["result"]["id"]
    section = small_event.sections[0]
    event_service.generate_spots(
        db.session, section.id, SYSTEM, first_row="B", last_row="B", seats_per_row=2
    )
    offered = _entry(first)
    assert offered.status == WaitlistStatus.OFFERED
    assert sorted(s.label for s in db.session.get(Hold, offered.hold_id).spots) == ["B-1", "B-2"]


def test_the_offer_mail_gives_the_deadline_in_the_event_local_time(client, small_event):
    held, (first,) = _sold_out_with_line(client, small_event, 1)
    expire(held["id"])
    assert waitlist.sweep(db.session) == 1
    [mail] = _offer_mails(first)
    hold = db.session.get(Hold, _entry(first).hold_id)
    message = messages.render(db.session, mail)
    assert format_local(hold.expires_at, small_event.timezone, "en") in message.text
    assert f"/events/{small_event.id}" in message.text
    assert "A-" in message.text
    mail.locale = "pt_BR"
    in_portuguese = messages.render(db.session, mail).text
    assert format_local(hold.expires_at, small_event.timezone, "pt_BR") in in_portuguese
    assert "BRT" in in_portuguese  # São Paulo's time, not UTC


# -- the line in force -------------------------------------------------------------------------


def test_ordinary_buyers_are_refused_while_someone_waits(client, small_event):
    spots = small_event.sections[0].spots
    buyer = _customer(client)
    one = _hold(client, small_event, spots[:1], buyer)
    _hold(client, small_event, spots[1:])
    _join(client, small_event, _customer(client), quantity=2)  # waits for 2
    client.delete(f"/api/v1/holds/{one['id']}", headers=buyer)  # 1 comes back: kept for them
    other = _customer(client)
    best = {"event_id": small_event.id, "section_id": small_event.sections[0].id, "quantity": 1}
    refused = client.post("/api/v1/holds/", json=best, headers=other)
    assert refused.status_code == 409
    assert refused.get_json()["error"] == "waitlist"
    assert "waiting list" in refused.get_json()["message"]
    chosen = client.post(
        "/api/v1/holds/",
        json={"event_id": small_event.id, "spot_ids": [spots[0].id]},
        headers=other,
    )
    assert chosen.status_code == 409 and chosen.get_json()["error"] == "waitlist"
    # The fast path, answering from memory for a second, says the same.
    assert sold_out.waitlist_in_force(small_event.id, small_event.sections[0].id)
    again = client.post("/api/v1/holds/", json=best, headers=other)
    assert again.status_code == 409 and again.get_json()["error"] == "waitlist"
    assert db.session.get(EventSpot, spots[0].id).status == SpotStatus.AVAILABLE


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"quantity": 0}, 422, "quantity"),
        ({"quantity": 11}, 422, "quantity"),
        ({"quantity": "2"}, 422, "quantity"),
        ({"section_id": -1}, 422, "section_id"),
        ({"section_id": 999999}, 404, "section_id"),
        ({"ticket_type_id": 999999}, 404, "ticket_type_id"),
    ],
)
def test_bad_joins_answer_4xx_naming_the_field(client, small_event, body, status, field):
    _hold_all(client, small_event)
    answer = _join(client, small_event, _customer(client), **body)
    assert answer.status_code == status, answer.get_json()
    assert answer.get_json()["field"] == field


def test_joins_of_events_not_on_sale_and_odd_bodies_are_refused(client, small_event):
    headers = _customer(client)
    draft = make_event(small_event.partner, "Draft")
    assert _join(client, draft, headers).status_code == 404
    assert client.post("/api/v1/waitlist/999999", json={}, headers=headers).status_code == 404
    odd = client.post(f"/api/v1/waitlist/{small_event.id}", json=[1], headers=headers)
    assert odd.status_code == 400
    bad = client.delete(f"/api/v1/waitlist/{small_event.id}?section_id=x", headers=headers)
    assert bad.status_code == 422 and bad.get_json()["field"] == "section_id"
    assert client.post(f"/api/v1/waitlist/{small_event.id}", json={}).status_code == 401


# -- the partner's dashboard -------------------------------------------------------------------


def test_a_partner_sees_only_its_own_waiting_lists(client, small_event):
    _, (mine,) = _sold_out_with_line(client, small_event, 1)
    other_partner = make_partner("Bossa")
    other = make_event(other_partner, "Other", rows=("A", "A"), seats=1)
    other.publish()
    db.session.commit()
    _hold_all(client, other)
    foreign = _join(client, other, _customer(client)).get_json()["result"]["id"]
    make_user("alice", "Partner", small_event.partner)
    client.get("/logout/")
    login(client, "alice")
    listing = client.get("/waitlistentryview/list/").get_data(as_text=True)
    assert small_event.name in listing and "Other" not in listing
    assert client.get(f"/waitlistentryview/show/{mine}").status_code == 200
    assert client.get(f"/waitlistentryview/show/{foreign}").status_code == 404
    figures = client.get("/waitlistentryview/conversions/").get_data(as_text=True)
    assert small_event.name in figures and "Other" not in figures


def _headers_of(client, entry: WaitlistEntry) -> dict[str, str]:
    """API headers of the entry's customer (signed up by ``_customer`` with the shop's password)."""
    from tests.support.shop import CUSTOMER_PASSWORD

    token = client.post(
        "/api/v1/security/login",
        json={"username": entry.customer.email, "password": CUSTOMER_PASSWORD, "provider": "db"},
    ).get_json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


# -- the shop ----------------------------------------------------------------------------------


def test_the_shop_joins_and_leaves_a_sold_out_sections_waiting_list(client, small_event):
    from tests.support.shop import CUSTOMER_PASSWORD

    _hold_all(client, small_event)
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    sign_up(client, email)
    login(client, email, CUSTOMER_PASSWORD)
    page = client.get(f"/events/{small_event.id}").get_data(as_text=True)
    assert "Join the waiting list" in page and "Best available" not in page
    joined = client.post(
        f"/events/{small_event.id}/waitlist",
        data={"section_id": small_event.sections[0].id, "quantity": "2"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "You are in the waiting list: number 1." in joined
    assert "Number 1 in line" in joined and "Leave the waiting list" in joined
    entry = db.session.scalars(select(WaitlistEntry)).one()
    assert (entry.quantity, entry.section_id) == (2, small_event.sections[0].id)
    left = client.post(
        f"/events/{small_event.id}/waitlist/leave",
        data={"section_id": small_event.sections[0].id},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "You left the waiting list." in left and "Number 1 in line" not in left
    assert _entry(entry.id).status == WaitlistStatus.LEFT


def test_the_shop_keeps_a_section_with_a_line_from_ordinary_buyers(client, small_event):
    spots = small_event.sections[0].spots
    buyer = _customer(client)
    one = _hold(client, small_event, spots[:1], buyer)
    _hold(client, small_event, spots[1:])
    _join(client, small_event, _customer(client), quantity=2)
    client.delete(f"/api/v1/holds/{one['id']}", headers=buyer)  # 1 free, kept for the line
    page = client.get(f"/events/{small_event.id}").get_data(as_text=True)
    assert "Best available" not in page and "Join the waiting list" in page


def test_a_visitor_joining_is_asked_to_log_in(client, small_event):
    answer = client.post(f"/events/{small_event.id}/waitlist", data={"quantity": "1"})
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]


# -- with the cart, presales and checkout (review of the merged features) ---------------------


def _offered_with_a_second_section(client) -> tuple[Any, dict[str, str], WaitlistEntry]:
    """An event of two sections of 2 seats; the first sold out and its hold expired: the one
    customer in line holds an offer of 1 seat."""
    event = make_event(make_partner("Aurora"), sections=2, rows=("A", "A"), seats=2)
    event.publish()
    db.session.commit()
    sold_out.forget()
    held = _hold(client, event, event.sections[0].spots)
    waiting = _customer(client)
    joined = _join(client, event, waiting, section_id=event.sections[0].id)
    assert joined.status_code == 201, joined.get_json()
    expire(held["id"])
    release_expired_holds(db.session)
    entry = _entry(joined.get_json()["result"]["id"])
    assert entry.status == WaitlistStatus.OFFERED
    return event, waiting, entry


def test_an_offer_is_not_a_cart_and_leaving_the_list_frees_only_the_offer(client, tasks_in_process):
    event, waiting, entry = _offered_with_a_second_section(client)
    added = client.post(
        "/api/v1/holds/",
        json={"event_id": event.id, "section_id": event.sections[1].id, "quantity": 2},
        headers=waiting,
    )
    assert added.status_code == 201, added.get_json()
    cart = added.get_json()["result"]
    # A hold of its own for the ordinary seats, for HOLD_MINUTES, not the offer's window.
    assert cart["id"] != entry.hold_id and len(cart["spots"]) == 2
    assert cart["seconds_left"] <= 600
    assert client.delete(f"/api/v1/waitlist/{event.id}", headers=waiting).status_code == 200
    db.session.expire_all()
    statuses = [s.status for s in event.sections[1].spots]
    assert statuses == [SpotStatus.HELD, SpotStatus.HELD]
    assert db.session.get(Hold, entry.hold_id).status == HoldStatus.RELEASED


def test_paying_an_offer_near_its_deadline_gets_the_payment_grace(client, tasks_in_process):
    event, waiting, entry = _offered_with_a_second_section(client)
    hold = db.session.get(Hold, entry.hold_id)
    hold.expires_at = utcnow().replace(microsecond=0) + dt.timedelta(seconds=30)
    hold.created_at = hold.expires_at - dt.timedelta(minutes=60)
    entry.offer_expires_at = hold.expires_at
    for spot in hold.spots:
        spot.held_until = hold.expires_at
    db.session.commit()
    before = hold.expires_at
    assert pay(client, waiting, hold.id, card_token(client, DECLINED)).status_code == 402
    db.session.expire_all()
    assert db.session.get(Hold, hold.id).expires_at > before + dt.timedelta(seconds=60)


def test_a_presale_section_has_no_waiting_list_and_no_event_wide_line(client):
    event = make_event(make_partner("Aurora"), sections=2, rows=("A", "A"), seats=2)
    presale = event.sections[1]
    presale.hidden = True
    event.publish()
    db.session.commit()
    sold_out.forget()
    _hold(client, event, event.sections[0].spots)
    # The public section is sold out: the event-wide list is open, a presale's is not found.
    assert _join(client, event, _customer(client), quantity=1).status_code == 201
    hidden = _join(client, event, _customer(client), quantity=1, section_id=presale.id)
    assert hidden.status_code == 404 and hidden.get_json()["field"] == "section_id"
    # The event-wide entry keeps the public section's spots for the line, not the presale's:
    # a code holder still holds there.
    from app.services import promos  # noqa: F401 - the model's module is loaded with the app

    db.session.add(
        PromoCode(
            partner_id=event.partner_id,
            event_id=event.id,
            section_id=presale.id,
            code="FANS",
            kind="percent",
            value=10,
        )
    )
    db.session.commit()
    fan = client.post(
        "/api/v1/holds/",
        json={"event_id": event.id, "section_id": presale.id, "quantity": 1, "promo_code": "FANS"},
        headers=_customer(client),
    )
    assert fan.status_code == 201, fan.get_json()


def test_the_sweep_leaves_out_events_no_longer_on_sale(client, small_event):
    _sold_out_with_line(client, small_event, 1)
    assert waitlist.events_with_waiting(db.session) == [small_event.id]
    small_event.sales_end = utcnow() - dt.timedelta(minutes=1)
    db.session.commit()
    assert waitlist.events_with_waiting(db.session) == []


# -- the line of a capped ticket type (half price sold out by its cap) -------------------------

FULL, HALF = 10000, 5000


@pytest.fixture
def typed(small_event) -> dict[str, Any]:
    """small_event (4 seats) sold as Inteira (full price) and Meia-entrada capped at 1."""
    from app.models import TicketType

    section = small_event.sections[0]
    full = TicketType(section=section, name="Inteira", kind="full", price_cents=FULL)
    half = TicketType(section=section, name="Meia-entrada", kind="half", price_cents=HALF, cap=1)
    db.session.add_all([full, half])
    db.session.commit()
    return {"event": small_event, "section": section, "full": full.id, "half": half.id}


def _typed_hold(client, typed, kinds: list[str], headers=None) -> Any:
    """A best-available hold of these types (a new customer by default); the response."""
    return client.post(
        "/api/v1/holds/",
        json={
            "event_id": typed["event"].id,
            "section_id": typed["section"].id,
            "quantity": len(kinds),
            "ticket_types": [typed[k] for k in kinds],
        },
        headers=headers or _customer(client),
    )


def _held(answer) -> dict[str, Any]:
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["result"]


def _student_waits(client, typed, quantity: int = 1) -> int:
    joined = _join(
        client, typed["event"], _customer(client), ticket_type_id=typed["half"], quantity=quantity
    )
    assert joined.status_code == 201, joined.get_json()
    assert joined.get_json()["result"]["position"] == 1
    return joined.get_json()["result"]["id"]


def test_a_student_waits_for_half_price_while_full_price_still_sells(client, typed):
    _held(_typed_hold(client, typed, ["half"]))  # the one half-price place taken
    student = _student_waits(client, typed)
    entry = _entry(student)
    assert (entry.section_id, entry.ticket_type_id) == (typed["section"].id, typed["half"])
    # Ordinary buyers still buy full price: the type's line does not keep the section.
    assert waitlist.waiting_sections(db.session, typed["event"].id) == set()
    full = _held(_typed_hold(client, typed, ["full"]))
    assert [s["ticket_type"] for s in full["spots"]] == ["Inteira"]
    plain = client.post(
        "/api/v1/holds/",
        json={"event_id": typed["event"].id, "section_id": typed["section"].id, "quantity": 1},
        headers=_customer(client),
    )
    assert plain.status_code == 201, plain.get_json()
    # Asking for half price is refused for the line, whatever the cap would say.
    refused = _typed_hold(client, typed, ["half"])
    assert refused.status_code == 409, refused.get_json()
    assert refused.get_json()["error"] == "waitlist"
    assert "Meia-entrada" in refused.get_json()["message"]
    assert _entry(student).status == WaitlistStatus.WAITING


def test_joining_for_a_type_still_on_sale_is_refused(client, typed):
    for kind in ("half", "full"):  # the half price's cap not reached; full price uncapped
        answer = _join(client, typed["event"], _customer(client), ticket_type_id=typed[kind])
        assert answer.status_code == 409, answer.get_json()
        assert answer.get_json()["error"] == "spots_on_sale"
    _held(_typed_hold(client, typed, ["half"]))  # the cap reached: full price still sells
    answer = _join(client, typed["event"], _customer(client), ticket_type_id=typed["full"])
    assert answer.status_code == 409 and answer.get_json()["error"] == "spots_on_sale"
    assert db.session.scalar(select(WaitlistEntry.id)) is None


def test_a_refunded_half_price_ticket_is_offered_to_the_student(client, typed, tasks_in_process):
    from app.services import refunds
    from app.services.payments import gateway

    buyer = _customer(client)
    held = _held(_typed_hold(client, typed, ["half"], buyer))
    order = pay(client, buyer, held["id"], card_token(client))
    assert order.status_code == 201, order.get_json()
    student = _student_waits(client, typed)
    refunds.refund_order(db.session, gateway(), order.get_json()["result"]["id"], SYSTEM)
    offered = _entry(student)
    assert offered.status == WaitlistStatus.OFFERED
    hold = db.session.get(Hold, offered.hold_id)
    assert [(s.held_ticket_type_id, s.held_price_cents) for s in hold.spots] == [
        (typed["half"], HALF)
    ]
    assert len(_offer_mails(student)) == 1
    paid = pay(client, _headers_of(client, offered), hold.id, card_token(client))
    assert paid.status_code == 201, paid.get_json()
    assert paid.get_json()["result"]["total_cents"] == HALF
    assert [t["ticket_type"] for t in paid.get_json()["result"]["tickets"]] == ["Meia-entrada"]
    assert _entry(student).status == WaitlistStatus.CONVERTED


def test_an_expired_half_price_hold_is_offered_to_the_student(client, typed, tasks_in_process):
    held = _held(_typed_hold(client, typed, ["half", "full"]))
    first = _student_waits(client, typed)
    second = _student_waits_behind(client, typed)
    expire(held["id"])
    assert release_expired_holds(db.session) == 1  # its commit sends the offer task
    offered = _entry(first)
    assert offered.status == WaitlistStatus.OFFERED
    [spot] = db.session.get(Hold, offered.hold_id).spots
    assert (spot.held_ticket_type_id, spot.held_price_cents) == (typed["half"], HALF)
    # The cap is reached again by the offer: the next student waits (3 full-price seats free).
    assert _entry(second).status == WaitlistStatus.WAITING
    assert _entry(second).position == 1
    assert _typed_hold(client, typed, ["half"]).get_json()["error"] == "waitlist"


def _student_waits_behind(client, typed) -> int:
    joined = _join(client, typed["event"], _customer(client), ticket_type_id=typed["half"])
    assert joined.status_code == 201, joined.get_json()
    return joined.get_json()["result"]["id"]


def test_a_section_line_first_does_not_stop_a_type_offer(client, typed):
    """The section's first wants more spots than came back: the type's first, who can be
    served, is (the lines do not block each other)."""
    spots = typed["section"].spots
    half_buyer = _customer(client)
    half = _held(_typed_hold(client, typed, ["half"], half_buyer))
    taken = {s["id"] for s in half["spots"]}
    _hold(client, typed["event"], [s for s in spots if s.id not in taken])  # sold out
    section_first = _join(client, typed["event"], _customer(client), quantity=2)
    assert section_first.status_code == 201, section_first.get_json()
    student = _student_waits(client, typed)  # first in the type's line, behind in time
    client.delete(f"/api/v1/holds/{half['id']}", headers=half_buyer)  # 1 spot and 1 half back
    assert waitlist.make_offers(db.session, typed["event"].id) == 1
    assert _entry(student).status == WaitlistStatus.OFFERED
    assert _entry(section_first.get_json()["result"]["id"]).status == WaitlistStatus.WAITING


def test_a_type_line_first_does_not_stop_a_section_offer(client, typed):
    """The half price's cap is still reached when a full-price seat comes back: the section's
    first gets it, though the student joined before."""
    spots = typed["section"].spots
    _held(_typed_hold(client, typed, ["half"]))
    full_buyer = _customer(client)
    full = _held(_typed_hold(client, typed, ["full"], full_buyer))
    db.session.expire_all()
    _hold(client, typed["event"], [s for s in spots if s.status == SpotStatus.AVAILABLE])
    student = _student_waits(client, typed)
    section_first = _join(client, typed["event"], _customer(client))
    assert section_first.status_code == 201, section_first.get_json()
    assert section_first.get_json()["result"]["position"] == 1  # the type's line is apart
    client.delete(f"/api/v1/holds/{full['id']}", headers=full_buyer)
    assert waitlist.make_offers(db.session, typed["event"].id) == 1
    assert _entry(section_first.get_json()["result"]["id"]).status == WaitlistStatus.OFFERED
    assert _entry(student).status == WaitlistStatus.WAITING


def test_the_shop_offers_the_waiting_list_of_a_type_sold_out_by_its_cap(client, typed):
    from tests.support.shop import CUSTOMER_PASSWORD

    event = typed["event"]
    _held(_typed_hold(client, typed, ["half"]))
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    sign_up(client, email)
    login(client, email, CUSTOMER_PASSWORD)
    page = client.get(f"/events/{event.id}").get_data(as_text=True)
    assert "Join the waiting list for Meia-entrada" in page
    assert f'name="qty_{typed["full"]}"' in page and f'name="qty_{typed["half"]}"' not in page
    joined = client.post(
        f"/events/{event.id}/waitlist",
        data={"ticket_type_id": typed["half"], "quantity": "1"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "You are in the waiting list: number 1." in joined
    assert "Meia-entrada" in joined and "Join the waiting list for Meia-entrada" not in joined
    entry = db.session.scalars(select(WaitlistEntry)).one()
    assert entry.ticket_type_id == typed["half"]
    assert f'name="qty_{typed["full"]}"' in joined  # full price still on sale


def test_an_offer_past_its_deadline_reads_expired_before_the_sweep_records_it(
    client, small_event, tasks_in_process
):
    """The sweep that ends an unclaimed offer runs every minute; meanwhile the customer is not
    told that spots are still on hold for them."""
    from tests.support.shop import CUSTOMER_PASSWORD

    held = _hold_all(client, small_event)
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    headers = sign_up(client, email)
    entry_id = _join(client, small_event, headers, quantity=2).get_json()["result"]["id"]
    expire(held["id"])
    release_expired_holds(db.session)
    login(client, email, CUSTOMER_PASSWORD)

    def shown() -> tuple[str, str]:
        [mine] = client.get("/api/v1/waitlist/", headers=headers).get_json()["result"]
        return mine["status"], client.get(f"/events/{small_event.id}").get_data(as_text=True)

    status, page = shown()
    assert status == "offered" and "Spots on hold for you until" in page
    entry = _entry(entry_id)
    expire(entry.hold_id)
    entry.offer_expires_at = utcnow() - dt.timedelta(seconds=1)
    db.session.commit()
    status, page = shown()
    assert status == "expired" and "Spots on hold for you until" not in page
    assert _entry(entry_id).status == WaitlistStatus.OFFERED  # as recorded, until the sweep
