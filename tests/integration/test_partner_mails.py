"""Partners hear from us: their approval, each payout paid with its statement (a CSV of every
transaction it covers), and a daily summary of yesterday's sales that they may turn off."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import MailStatus, OutboxMail, Partner, PartnerStatus
from app.models.base import utcnow
from app.services import payouts
from app.services.mail import messages, partner_mails, sender
from tests.support.builders import login, make_partner, make_user
from tests.support.money import create_payouts, happened_days_ago, reconcile
from tests.support.shop import buy


def _mails(kind: str) -> list[OutboxMail]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(OutboxMail).where(OutboxMail.kind == kind).order_by(OutboxMail.id)
        )
    )


def _rendered(mail: OutboxMail) -> messages.Message:
    message = messages.render(db.session, mail)
    message.subject, message.text, message.html = (
        p.replace("\xa0", " ") for p in (message.subject, message.text, message.html)
    )
    return message


def test_an_approved_partner_is_told_at_its_contact_address(client):
    make_user("root", "Admin")
    partner = make_partner("Pendente", status=PartnerStatus.PENDING.value)
    partner.contact_email = "contato@pendente.example"
    db.session.commit()
    login(client, "root")
    client.post(f"/partnerview/action/approve/{partner.id}")
    (mail,) = _mails("partner_approved")
    assert (mail.to_address, mail.locale) == ("contato@pendente.example", "pt_BR")
    message = _rendered(mail)
    assert message.subject == "Pendente foi aprovado: você já pode vender na Bilheteria"
    assert "http://127.0.0.1:5000/" in message.text


def test_without_a_contact_address_the_partners_users_are_told(client):
    make_user("root", "Admin")
    partner = make_partner("Semcontato", status=PartnerStatus.PENDING.value)
    partner.contact_email = None
    user = make_user("bruno", "Partner", partner)
    user.email, user.locale = "bruno@semcontato.example", "en"
    db.session.commit()
    login(client, "root")
    client.post(f"/partnerview/action/approve/{partner.id}")
    (mail,) = _mails("partner_approved")
    assert (mail.to_address, mail.locale) == ("bruno@semcontato.example", "en")
    assert "is approved" in _rendered(mail).subject


@pytest.mark.usefixtures("acquirer_fees")
def test_a_paid_payout_comes_with_its_statement(client, on_sale):
    on_sale.partner.contact_email = "financeiro@aurora.example"
    db.session.commit()
    buy(client, on_sale, 2)
    buy(client, on_sale, 1)
    reconcile(happened_days_ago(2))
    [payout_id] = create_payouts()
    finance = make_user("fiona", "Finance")
    payouts.approve_payout(db.session, payout_id, finance, utcnow())
    assert _mails("payout_paid") == []  # approved is not paid
    paid = payouts.mark_payout_paid(db.session, payout_id, "TED 77", finance, utcnow())
    (mail,) = _mails("payout_paid")
    assert mail.to_address == "financeiro@aurora.example"
    message = _rendered(mail)
    reais, cents = divmod(paid.amount_cents, 100)
    amount = f"R$ {reais:,}".replace(",", ".") + f",{cents:02d}"
    assert amount in message.subject and amount in message.text
    assert "TED 77" in message.html
    (attachment,) = message.attachments
    assert attachment.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(attachment.data.decode("utf-8-sig"))))
    assert rows[0][2] == "Tipo"
    sales = [r for r in rows[1:] if r[2] == "Vendas"]
    assert len(sales) == 2  # both orders' captures
    assert rows[-1][4] == f"{paid.amount_cents // 100}.{paid.amount_cents % 100:02d}"
    total = sum(int(r[4].replace(".", "")) for r in rows[1:-1])
    assert total == paid.amount_cents  # the lines add up to what was paid


def test_the_daily_summary_covers_yesterday_once_and_can_be_turned_off(client, on_sale, mailbox):
    on_sale.partner.contact_email = "vendas@aurora.example"
    other = make_partner("Quieto")  # no sales: no mail
    other.contact_email = "quieto@example.com"
    db.session.commit()
    buy(client, on_sale, 2)
    buy(client, on_sale, 1)
    now = utcnow() + dt.timedelta(days=1)  # tomorrow, the summary of today's sales
    assert partner_mails.queue_daily_summaries(db.session, now) == 1
    assert partner_mails.queue_daily_summaries(db.session, now) == 0  # once per day
    (mail,) = _mails("daily_summary")
    assert mail.to_address == "vendas@aurora.example"
    message = _rendered(mail)
    assert "3 ingresso(s)" in message.text
    assert "R$ 300,00" in message.text and "Concert" in message.html
    assert "taxa" not in message.text.lower() or "taxas e repasses" in message.text.lower()
    # The link in the mail turns the summary off.
    link = message.text.split("diários: ")[-1].split()[0]
    path = link.replace("http://127.0.0.1:5000", "")
    page = client.get(path)
    assert page.status_code == 200
    client.post(path)
    db.session.expire_all()
    assert db.session.get(Partner, on_sale.partner.id).daily_summary is False
    db.session.execute(update(OutboxMail).values(key=OutboxMail.key + ":old"))
    db.session.commit()
    assert partner_mails.queue_daily_summaries(db.session, now) == 0
    assert client.get("/daily-summary/off/forged").status_code == 404
    # The summary written before the partner turned it off is not sent: dropped, not failed.
    assert mail.id in sender.send_due(db.session).dropped
    db.session.expire_all()
    assert db.session.get(OutboxMail, mail.id).status == MailStatus.DROPPED


def test_a_long_contact_address_neither_breaks_a_payout_nor_its_message_id(
    client, on_sale, mailbox, tasks_in_process
):
    """A key holds a digest of the address, not the address: a 300-character address once made
    the key too long and failed the payout it was written with; and the Message-ID had two @."""
    long_address = f"{'x' * 250}@{'financeiro.' * 3}aurora.example"
    assert len(long_address) > 200
    on_sale.partner.contact_email = long_address
    db.session.commit()
    buy(client, on_sale, 1)
    reconcile(happened_days_ago(2))
    [payout_id] = create_payouts()
    finance = make_user("fiona", "Finance")
    payouts.approve_payout(db.session, payout_id, finance, utcnow())
    payouts.mark_payout_paid(db.session, payout_id, "TED 1", finance, utcnow())
    (mail,) = _mails("payout_paid")
    assert mail.to_address == long_address and long_address not in mail.key
    (received,) = mailbox.wait_for(1, to=long_address)
    assert received["Message-ID"].count("@") == 1 and received["Message-ID"] == mail.message_id


def test_an_admin_turns_the_daily_summary_on_and_off_in_the_partner_form(client):
    make_user("root", "Admin")
    partner = make_partner("Formulario")
    login(client, "root")
    form = {"name": partner.name, "contact_email": "f@example.com", "fee_percent": "10",
            "fee_fixed_amount": "1,00"}  # fmt: skip
    assert client.post(f"/partnerview/edit/{partner.id}", data=form).status_code == 302
    db.session.expire_all()
    assert db.session.get(Partner, partner.id).daily_summary is False  # left unticked
    form["daily_summary"] = "y"
    assert client.post(f"/partnerview/edit/{partner.id}", data=form).status_code == 302
    db.session.expire_all()
    assert db.session.get(Partner, partner.id).daily_summary is True
