"""Customers hear of what happens to their orders: a refund by the organiser, their own
cancellation, the event cancelled (with the refund that follows) or moved. Each mail is written
in the transaction of its cause, once per cause, in the customer's language, with the amounts
and never a fee or card data; an unconfirmed address's mails wait."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import Customer, Event, MailStatus, Order, OutboxMail, PartnerUser
from app.models.base import utcnow
from app.services.mail import messages
from app.tasks import celery
from tests.support.builders import api_token, login, make_user
from tests.support.shop import buy, sign_up

KINDS = ("refund", "order_cancelled", "event_cancelled", "event_changed")


def _confirm_everyone() -> None:
    db.session.execute(update(Customer).values(email_confirmed_at=utcnow()))
    db.session.commit()


def _speaks(email: str, locale: str) -> None:
    """The customer's saved language (sign-up saves the one they signed up in)."""
    user_id = db.session.scalar(select(Customer.user_id).where(Customer.email == email))
    db.session.execute(update(PartnerUser).where(PartnerUser.id == user_id).values(locale=locale))
    db.session.commit()


def _notices(kind: str | None = None) -> list[OutboxMail]:
    query = select(OutboxMail).where(OutboxMail.kind.in_(KINDS)).order_by(OutboxMail.id)
    if kind:
        query = query.where(OutboxMail.kind == kind)
    db.session.expire_all()
    return list(db.session.scalars(query))


def _rendered(mail: OutboxMail) -> messages.Message:
    """The mail as sent, its no-break spaces ("R$\xa0100,00") read as spaces."""
    message = messages.render(db.session, mail)
    message.text, message.html = (p.replace("\xa0", " ") for p in (message.text, message.html))
    return message


@pytest.fixture
def refundable(client, on_sale):
    on_sale.refund_window_hours = 24
    db.session.commit()
    headers = sign_up(client, "bia@example.com", "Bia Lima")
    _confirm_everyone()
    order = buy(client, on_sale, 2, buyer=headers)
    make_user("alice", "Partner", on_sale.partner)
    return {"order": order, "headers": headers, "event": on_sale}


def test_a_partners_refund_of_one_ticket_tells_the_customer_the_amount(client, refundable):
    order = refundable["order"]
    ticket = order["tickets"][0]
    _speaks("bia@example.com", "pt_BR")
    login(client, "alice")
    client.post(f"/orderview/refund_tickets/{order['id']}", data={"tickets": [ticket["id"]]})
    (mail,) = _notices("refund")
    assert mail.to_address == "bia@example.com"
    assert mail.status in (MailStatus.PENDING, MailStatus.SENT)
    assert mail.locale == "pt_BR"  # the customer's, not the partner's (who asked in English)
    message = _rendered(mail)
    assert f"pedido {order['id']}" in message.subject.lower()
    for part in (message.text, message.html):
        assert "R$ 100,00" in part  # the one ticket's price, in pt-BR money
        assert ticket["spot"] in part
        assert "4242" not in part and "taxa" not in part.lower()
        assert f"/orders/{order['id']}" in part
    assert "continuam válidos" in message.text  # the other ticket stays valid


def test_a_customers_own_cancellation_is_confirmed_in_their_language(client, refundable):
    order = refundable["order"]
    answer = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=refundable["headers"])
    assert answer.status_code == 200, answer.get_json()
    (mail,) = _notices()
    assert (mail.kind, mail.locale) == ("order_cancelled", "en")  # signed up in English
    message = _rendered(mail)
    assert message.subject == f"Your order {order['id']} is cancelled: Concert"
    assert "R$200.00" in message.text and "R$200.00" in message.html
    # Asking again refunds nothing more and writes no second mail.
    client.post(f"/api/v1/orders/{order['id']}/cancel", headers=refundable["headers"])
    assert len(_notices()) == 1


def test_a_cancelled_event_tells_each_customer_then_each_refund_follows(client, on_sale):
    buyers = [sign_up(client, f"c{i}@example.com", f"Cliente {i}") for i in range(3)]
    _confirm_everyone()
    for i in range(3):
        _speaks(f"c{i}@example.com", "pt_BR")
    orders = [buy(client, on_sale, 1, buyer=headers) for headers in buyers]
    make_user("alice", "Partner", on_sale.partner)
    login(client, "alice")
    client.post(f"/eventview/cancel/{on_sale.id}", data={"reason": "Tempestade"})
    cancelled = _notices("event_cancelled")
    assert sorted(m.to_address for m in cancelled) == [f"c{i}@example.com" for i in range(3)]
    assert {m.params["order_id"] for m in cancelled} == {o["id"] for o in orders}
    celery.tasks["refunds.cancelled_event"].apply(args=[on_sale.id])  # as a worker would
    refunds = _notices("refund")
    assert len(refunds) == 3
    message = _rendered(cancelled[0])
    assert message.subject == "Cancelado: Concert"
    assert "Tempestade" in message.text and "R$ 100,00" in message.text
    refund = _rendered(refunds[0])
    assert "cancelou este evento" in refund.text


def test_moving_an_event_tells_its_customers_once_per_change(client, refundable):
    event = refundable["event"]
    _speaks("bia@example.com", "pt_BR")
    headers = api_token(client, "alice")
    before = db.session.get(Event, event.id).starts_at
    moved = client.put(
        f"/api/v1/events/{event.id}",
        json={"starts_at": "2031-07-10T18:00:00-03:00", "ends_at": None, "venue": "Arena Nova"},
        headers=headers,
    )
    assert moved.status_code == 200, moved.get_json()
    (mail,) = _notices("event_changed")
    assert mail.to_address == "bia@example.com"
    message = _rendered(mail)
    assert "10/07/2031 18:00" in message.text  # the new time, the venue's (São Paulo)
    old = before.replace(tzinfo=dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=-3)))
    assert old.strftime("%d/%m/%Y %H:%M") in message.text
    assert "Arena Nova" in message.html
    assert "Organizado por Aurora" in message.text  # the partner's name
    # The same values saved again: no second mail.
    client.put(
        f"/api/v1/events/{event.id}",
        json={"starts_at": "2031-07-10T18:00:00-03:00", "ends_at": None, "venue": "Arena Nova"},
        headers=headers,
    )
    client.put(f"/api/v1/events/{event.id}", json={"name": "Concerto"}, headers=headers)
    assert len(_notices("event_changed")) == 1


def test_an_event_moved_back_and_forth_tells_each_change_as_it_was(client, refundable):
    """A to B, back to A, to B again: three mails, each telling its own change (the third was
    once lost: it had the first one's key)."""
    event = refundable["event"]
    headers = api_token(client, "alice")
    places = ["Arena Nova", "Hall", "Arena Nova"]
    for place in places:
        answer = client.put(f"/api/v1/events/{event.id}", json={"venue": place}, headers=headers)
        assert answer.status_code == 200, answer.get_json()
    mails = _notices("event_changed")
    assert len(mails) == 3
    told = [(m.params["before"]["venue"], m.params["after"]["venue"]) for m in mails]
    assert told == [("Hall", "Arena Nova"), ("Arena Nova", "Hall"), ("Hall", "Arena Nova")]
    second = _rendered(mails[1])  # rendered after all three: still its own change
    assert "New place: Hall, Sao Paulo (was Arena Nova, Sao Paulo)." in second.text


def test_a_change_made_on_an_expired_event_is_seen(refundable):
    """After a commit the event's attributes are expired: a change assigned then is still a
    change (its old value is loaded first), not a silent one."""
    event = db.session.get(Event, refundable["event"].id)
    db.session.commit()  # expires it
    event.venue = "Estádio"
    db.session.commit()
    (mail,) = _notices("event_changed")
    assert (mail.params["before"]["venue"], mail.params["after"]["venue"]) == ("Hall", "Estádio")


def test_an_unconfirmed_address_still_hears_of_its_refund_at_once(
    client, on_sale, mailbox, tasks_in_process
):
    """Only the mail that carries tickets waits for the address to be confirmed: a notice
    carries none, and a customer who never confirmed must still learn of a cancellation."""
    headers = sign_up(client, "novo@example.com", "Novo Cliente", confirmed=False)
    order = buy(client, on_sale, 1, buyer=headers)
    on_sale.refund_window_hours = 24
    db.session.commit()
    client.post(f"/api/v1/orders/{order['id']}/cancel", headers=headers)
    (mail,) = _notices("order_cancelled")
    assert mail.status == MailStatus.SENT
    (received,) = [
        m for m in mailbox.wait_for(1, to="novo@example.com") if "cancelled" in m["Subject"]
    ]
    assert received["Subject"] == f"Your order {order['id']} is cancelled: Concert"
    confirmation = select(OutboxMail.status).where(OutboxMail.kind == "order_paid")
    assert db.session.scalars(confirmation).all() == [MailStatus.HELD]  # its tickets wait


def test_a_customer_who_saved_a_language_reads_it(client, refundable):
    _speaks("bia@example.com", "en")
    login(client, "alice")
    client.post(f"/orderview/action/refund/{refundable['order']['id']}")
    (mail,) = _notices("refund")
    assert mail.locale == "en"
    assert "Refunded to your card" in _rendered(mail).text
    assert db.session.get(Order, refundable["order"]["id"]).status == "refunded"
