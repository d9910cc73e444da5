"""The order confirmation: a paid order mails its customer, in the sale's own transaction, one
mail with the tickets as the gate reads them (each QR code inline, the PDF of the tickets, the
event as a calendar entry), the total they paid, a link to the order, in their language; never a
fee or a card number. An unconfirmed address's mail waits; a sale that does not happen writes
none. Courtesy tickets get the same mail."""

from __future__ import annotations

import datetime as dt
import re
from email.message import EmailMessage
from urllib.parse import urlsplit

import pypdfium2 as pdfium
import pytest
from icalendar import Calendar
from sqlalchemy import select, update

from app.extensions import db
from app.models import (
    Customer,
    LedgerTransaction,
    MailStatus,
    Order,
    OutboxMail,
    PartnerUser,
    TicketType,
)
from app.models.base import utcnow
from app.services import courtesy
from app.services.mail import messages, sender
from tests.support.builders import PartnerActor, make_event, make_partner
from tests.support.plans import statements_run
from tests.support.shop import (
    CUSTOMER_PASSWORD,
    DECLINED,
    buy,
    card_token,
    hold_seats,
    pay,
    payment_figures,
    sign_up,
)


@pytest.fixture
def concert():
    """Aurora's published "Ópera — Noite de Gala" in Manaus (UTC-4), at a known time."""
    event = make_event(
        make_partner("Aurora Produções"),
        "Ópera — Noite de Gala",
        venue="Teatro Amazonas",
        city="Manaus",
        rows=("A", "C"),
        seats=10,
        timezone="America/Manaus",
        image_url="https://images.example.com/opera.jpg",
    )
    event.starts_at = dt.datetime(2027, 3, 20, 23, 30)  # 19:30 in Manaus
    event.ends_at = dt.datetime(2027, 3, 21, 2, 0)
    event.publish()
    db.session.commit()
    return event


def _customer(client, email: str, name: str, locale: str, *, confirmed: bool = True):
    headers = sign_up(client, email, name)
    user_id = db.session.scalar(select(Customer.user_id).where(Customer.email == email))
    db.session.execute(update(PartnerUser).where(PartnerUser.id == user_id).values(locale=locale))
    # The address confirmed or not, whatever sign-up did (the link's flow is tested elsewhere).
    db.session.execute(
        update(Customer)
        .where(Customer.email == email)
        .values(email_confirmed_at=utcnow() if confirmed else None)
    )
    db.session.commit()
    return headers


def _order_mails(order_id: int | None = None) -> list[OutboxMail]:
    db.session.expire_all()
    query = select(OutboxMail).where(OutboxMail.kind == "order_paid").order_by(OutboxMail.id)
    if order_id is not None:
        query = query.where(OutboxMail.key == f"order_paid:{order_id}")
    return list(db.session.scalars(query))


def _confirmation(mailbox, email: str, order_id: int) -> EmailMessage:
    """The one confirmation of the order that reached the address (other mails, such as a
    sign-up's, are told apart by the Message-ID, the outbox row's)."""
    mailbox.wait_for(1, to=email)
    key = f"order_paid:{order_id}"
    row = db.session.scalars(select(OutboxMail).where(OutboxMail.key == key)).one()
    found = [m for m in mailbox.to(email) if m["Message-ID"] == row.message_id]
    assert all(m["X-Bilheteria-Mail"] == "order_paid" for m in found)
    assert len(found) == 1, [str(m["Subject"]) for m in mailbox.to(email)]
    return found[0]


def _parts(message: EmailMessage) -> dict[str, list[EmailMessage]]:
    parts: dict[str, list[EmailMessage]] = {}
    for part in message.walk():
        if not part.is_multipart():
            parts.setdefault(part.get_content_type(), []).append(part)
    return parts


def _read(message: EmailMessage) -> dict:
    """What a mail reader shows: the text and HTML, the inline images by Content-ID, the
    attachments by file name."""
    parts = _parts(message)
    [text_part] = parts["text/plain"]
    [html_part] = parts["text/html"]
    inline = {
        str(p["Content-ID"]).strip("<>"): p.get_content()
        for p in parts.get("image/png", [])
        if p.get_content_disposition() == "inline"
    }
    # Bytes as a calendar or PDF reader gets them (iCalendar is UTF-8 by definition).
    attachments = {
        p.get_filename(): p.get_payload(decode=True)
        for p in message.iter_attachments()
        if p.get_content_disposition() == "attachment"
    }
    # A text attachment names its charset: a reader decodes it as ASCII otherwise, and
    # garbles accented event names.
    for part in message.iter_attachments():
        if part.get_content_maintype() == "text":
            assert part.get_content_charset() == "utf-8", part.get_filename()
    return {
        "text": text_part.get_content().replace("\xa0", " "),
        "html": html_part.get_content().replace("\xa0", " "),
        "inline": inline,
        "attachments": attachments,
    }


def test_a_purchase_mails_the_customer_their_tickets_once_in_english(
    client, concert, mailbox, tasks_in_process
):
    headers = _customer(client, "bia@example.com", "Bia Lima", "en")
    order = buy(client, concert, 2, buyer=headers)
    message = _confirmation(mailbox, "bia@example.com", order["id"])
    read = _read(message)

    assert message.get_content_type() == "multipart/mixed"
    assert str(message["Subject"]) == (
        f"Your tickets for Ópera — Noite de Gala (order #{order['id']})"
    )
    seats = [f"{t['section']} {t['spot']}" for t in order["tickets"]]
    for body in (read["text"], read["html"]):
        assert "Hello, Bia Lima." in body
        assert "Ópera — Noite de Gala" in body and "Teatro Amazonas, Manaus" in body
        assert "03/20/2027 7:30 PM" in body  # the venue's clock (Manaus, UTC-4), not UTC's
        assert "Organised by Aurora Produções" in body
        for seat in seats:
            assert seat in body
        assert "R$200.00" in body  # what was paid, in the reader's (English) money
    # Each ticket's QR code is an inline PNG the HTML shows by its Content-ID.
    cids = re.findall(r'src="cid:([^"]+)"', read["html"])
    assert len(cids) == 2 and set(cids) == set(read["inline"])
    assert all(png.startswith(b"\x89PNG") for png in read["inline"].values())
    assert 'src="https://images.example.com/opera.jpg"' in read["html"]  # the event's image

    # The PDF: one page per ticket. The .ics: the event at the venue's time.
    pdf = read["attachments"][f"tickets-order-{order['id']}.pdf"]
    assert len(pdfium.PdfDocument(pdf)) == 2
    calendar = Calendar.from_ical(read["attachments"][f"order-{order['id']}.ics"])
    [entry] = calendar.walk("VEVENT")
    start = entry.decoded("dtstart")
    assert start.astimezone(dt.UTC).replace(tzinfo=None) == dt.datetime(2027, 3, 20, 23, 30)
    assert (start.hour, start.minute, str(start.tzinfo)) == (19, 30, "America/Manaus")
    assert str(entry["summary"]) == "Ópera — Noite de Gala"

    # The link in the mail opens the order for its customer.
    [link] = re.findall(r"https?://\S+/orders/\d+", read["text"])
    assert link.endswith(f"/orders/{order['id']}")
    client.post("/login/", data={"username": "bia@example.com", "password": CUSTOMER_PASSWORD})
    page = client.get(urlsplit(link).path)
    assert page.status_code == 200 and "Ópera — Noite de Gala" in page.get_data(as_text=True)

    # Nothing of the card, not even its last digits, and never the platform's fee.
    figures = payment_figures(order)
    whole = message.as_string()
    assert "4242424242424242" not in whole and "4242 4242" not in whole
    for body in (read["text"], read["html"]):
        assert "fee" not in body.lower()
        fee = f"{figures['fee_cents'] // 100}.{figures['fee_cents'] % 100:02d}"
        assert fee not in body
    for body in (read["text"], read["html"]):
        assert "Visa" not in body and "Card" not in body and "•••• 4242" not in body

    [mail] = _order_mails(order["id"])
    assert (mail.status, mail.locale, mail.to_address) == ("sent", "en", "bia@example.com")


def test_a_brazilian_customer_reads_portuguese_and_reais(
    client, concert, mailbox, tasks_in_process
):
    headers = _customer(client, "caio@example.com", "Caio Souza", "pt_BR")
    order = buy(client, concert, 1, buyer=headers)  # the request speaks English: not theirs
    message = _confirmation(mailbox, "caio@example.com", order["id"])
    read = _read(message)
    assert str(message["Subject"]).startswith("Seus ingressos para Ópera — Noite de Gala")
    for body in (read["text"], read["html"]):
        assert "Olá, Caio Souza." in body
        assert "R$ 100,00" in body
        assert "20/03/2027 19:30" in body
        assert "Organizado por Aurora Produções" in body
        assert "Hello" not in body and "Total paid" not in body
    assert len(pdfium.PdfDocument(read["attachments"][f"tickets-order-{order['id']}.pdf"])) == 1


def test_the_mail_is_written_in_the_sales_transaction_and_once(client, concert):
    headers = _customer(client, "dora@example.com", "Dora", "en")
    order = buy(client, concert, 2, buyer=headers)
    [mail] = _order_mails()
    assert mail.key == f"order_paid:{order['id']}"
    assert mail.params == {"order_id": order["id"]}
    assert mail.status == MailStatus.PENDING  # no mail server in this test: it waits
    # The renderer is the one registered for the kind; the mail reads the same when rendered.
    with_pdf = messages.render(db.session, mail)
    assert [a.mimetype for a in with_pdf.attachments] == ["application/pdf", "text/calendar"]
    assert len(with_pdf.inline) == 2


def test_the_sale_writes_its_mail_and_ledger_posting_in_its_own_statement(client, concert):
    headers = _customer(client, "dino@example.com", "Dino", "en")
    with statements_run() as seen:
        order = buy(client, concert, 2, buyer=headers)
    writes = {
        table: [s for s, _ in seen if re.search(rf"INSERT INTO {table}\b", s)]
        for table in ("mail_outbox", "ledger_transaction", "ledger_entry")
    }
    [(sale, params)] = [(s, p) for s, p in seen if re.search(r"\bcaptured AS\s*\(", s)]
    assert writes == {table: [sale] for table in writes}  # no statement more per purchase
    # Its steps' UPDATEs take a parameter named as a column of their table as a new value: none
    # of the sale's parameters is named so.
    written = ("payment", "event_spot", "ticket", "order", "hold", "webhook_delivery",
               "mail_outbox", "ledger_transaction", "ledger_entry")  # fmt: skip
    columns = {c.name for table in written for c in db.metadata.tables[table].columns}
    assert set(params) and not set(params) & columns
    [mail] = _order_mails(order["id"])
    assert mail.status == MailStatus.PENDING
    [posting] = db.session.scalars(
        select(LedgerTransaction).where(LedgerTransaction.cause_key.like("capture:payment:%"))
    ).all()
    assert posting.memo == f"Order {order['id']}" and len(posting.entries) == 3


def test_an_unconfirmed_address_gets_its_mail_held_not_sent(
    client, concert, mailbox, tasks_in_process
):
    headers = _customer(client, "eva@example.com", "Eva", "en", confirmed=False)
    order = buy(client, concert, 1, buyer=headers)
    [mail] = _order_mails(order["id"])
    assert mail.status == MailStatus.HELD
    assert sender.send_due(db.session).sent == []
    assert not [m for m in mailbox.to("eva@example.com") if m["X-Bilheteria-Mail"] == "order_paid"]


def test_a_declined_card_or_a_rolled_back_sale_writes_no_mail(client, concert, monkeypatch):
    from app.services.purchase import confirm

    headers = _customer(client, "fabio@example.com", "Fabio", "en")
    hold = hold_seats(client, headers, concert, 2)
    declined = pay(client, headers, hold["id"], card_token(client, DECLINED))
    assert declined.status_code == 402
    assert _order_mails() == []

    # The sale's statement writes its mail, then the commit is refused (its ledger posting does
    # not balance: the database's trigger): the whole sale rolls back (the order is cancelled
    # and the card refunded), the mail with it.
    written = []
    sale_posting, queued = confirm.ledger.sale_posting, confirm.outbox.queued

    def unbalanced(*args, **kwargs):
        posting = sale_posting(*args, **kwargs)
        return {**posting, "b_amounts": [posting["b_amounts"][0] + 1, *posting["b_amounts"][1:]]}

    def spy(session, values, mail_id):
        written.append(mail_id)
        queued(session, values, mail_id)

    monkeypatch.setattr(confirm.ledger, "sale_posting", unbalanced)
    monkeypatch.setattr(confirm.outbox, "queued", spy)
    lost = pay(client, headers, hold["id"], card_token(client))
    assert lost.status_code == 409, lost.get_json()
    assert lost.get_json()["error"] == "hold_lost"
    assert len(written) == 1 and written[0] is not None  # written in the sale's transaction
    assert _order_mails() == []  # and gone with it
    order = db.session.get(Order, lost.get_json()["order_id"])
    assert order.status == "cancelled"


def test_a_payment_the_reconcile_task_finishes_mails_its_confirmation(client, concert, monkeypatch):
    from app.services import payments
    from app.services.purchase.reconcile import reconcile_payments

    headers = _customer(client, "hugo@example.com", "Hugo", "pt_BR")
    hold = hold_seats(client, headers, concert, 1)
    real_charge = payments.SimulatedGateway.charge

    def unreachable(*_args, **_kwargs):
        raise ConnectionError("the processor did not answer")

    monkeypatch.setattr(payments.SimulatedGateway, "charge", unreachable)
    stuck = pay(client, headers, hold["id"], card_token(client))
    assert stuck.get_json()["error"] == "checkout_in_progress"
    assert _order_mails() == []
    monkeypatch.setattr(payments.SimulatedGateway, "charge", real_charge)
    later = utcnow() + dt.timedelta(minutes=5)
    assert reconcile_payments(db.session, payments.gateway(), later)["finished"] == 1
    [mail] = _order_mails()
    order = db.session.scalars(select(Order).where(Order.hold_id == hold["id"])).one()
    assert (order.status, mail.key) == ("paid", f"order_paid:{order.id}")
    assert (mail.to_address, mail.locale) == ("hugo@example.com", "pt_BR")  # no request: saved


def test_courtesy_tickets_send_the_same_confirmation(client, concert, mailbox, tasks_in_process):
    _customer(client, "guest@example.com", "Gui Convidado", "pt_BR")
    kind = TicketType(
        section=concert.sections[0], name="Cortesia", kind="courtesy", price_cents=0, public=False
    )
    db.session.add(kind)
    db.session.commit()
    given = courtesy.give(
        db.session, PartnerActor(concert.partner), kind.id, "guest@example.com", 2
    )
    [mail] = _order_mails(given.order_id)
    assert mail.to_address == "guest@example.com" and mail.locale == "pt_BR"
    message = _confirmation(mailbox, "guest@example.com", given.order_id)
    read = _read(message)
    assert "Cortesia" in read["text"] and "R$ 0,00" in read["text"]
    assert len(read["inline"]) == 2
    assert len(pdfium.PdfDocument(read["attachments"][f"tickets-order-{given.order_id}.pdf"])) == 2
