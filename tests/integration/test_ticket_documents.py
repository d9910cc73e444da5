"""Tickets that travel: a paid order's tickets as a PDF (a page per valid ticket) and its event
as a calendar entry, from the shop's order page and the customer API, for the order's owner
only. A printed ticket's QR code, read back from the PDF as a camera would, admits at the gate."""

from __future__ import annotations

import datetime as dt

import pypdfium2 as pdfium
import pytest
import zxingcpp
from icalendar import Calendar
from sqlalchemy import select, update

from app.extensions import db
from app.models import Customer, Order, PartnerUser
from app.models.codes import unb64
from tests.support.builders import make_partner
from tests.support.gate import device, open_event, result, scan
from tests.support.shop import (
    CUSTOMER_PASSWORD,
    DECLINED,
    buy,
    card_token,
    pay,
    sign_up,
)

DPI = 150  # a phone's screen or a quick print scan


def _pages(pdf: bytes) -> list[pdfium.PdfPage]:
    document = pdfium.PdfDocument(pdf)
    return [document[i] for i in range(len(document))]


def _page_text(page: pdfium.PdfPage) -> str:
    return page.get_textpage().get_text_range().replace("\r\n", "\n").replace("\xa0", " ")


def _read_qr(page: pdfium.PdfPage, dpi: int = DPI) -> tuple[str, float]:
    """The one QR code on the page as a camera reads it: its text and its printed side (mm)."""
    image = page.render(scale=dpi / 72).to_pil()
    [code] = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    corners = code.position
    side_px = abs(corners.top_right.x - corners.top_left.x)
    return code.text, side_px / dpi * 25.4


@pytest.fixture
def gala():
    """A published event with non-Latin-1 characters in its name, at a venue in Manaus (UTC-4),
    whose check-in is open."""
    partner = make_partner("Aurora Produções")
    event = open_event(
        partner,
        "Ópera — Noite de Gala «Carmen»",
        venue="Teatro Amazonas",
        city="Manaus",
        timezone="America/Manaus",
    )
    event.starts_at = dt.datetime(2027, 3, 20, 23, 30)  # 19:30 in Manaus
    event.ends_at = dt.datetime(2027, 3, 21, 2, 0)
    db.session.commit()
    return event


def _login(client, email: str) -> None:
    response = client.post("/login/", data={"username": email, "password": CUSTOMER_PASSWORD})
    assert response.status_code == 302


def test_a_printed_tickets_qr_code_read_back_from_the_pdf_admits_at_the_gate(client, gala):
    headers = sign_up(client, "bia@example.com", "Bia Lima")
    order = buy(client, gala, 2, buyer=headers)
    response = client.get(f"/api/v1/orders/{order['id']}/tickets.pdf", headers=headers)
    assert response.status_code == 200
    pages = _pages(response.data)
    assert len(pages) == 2
    gate = device(gala.partner, gala)
    by_code = {t["code"]: t for t in order["tickets"]}
    for page in pages:
        text, side_mm = _read_qr(page)
        assert text in by_code  # the very payload the order page's QR carries
        assert side_mm >= 50  # the code's modules alone; with its quiet zone it is 70 mm
        verdict = result(scan(client, gate, text))
        assert verdict["result"] == "valid"
        assert verdict["ticket_id"] == by_code[text]["id"]
    # Smaller, as a far or poor camera sees it: still read.
    assert _read_qr(pages[0], dpi=60)[0] in by_code


def test_each_page_prints_the_ticket_in_the_readers_language_and_the_venues_time(client, gala):
    headers = sign_up(client, "dora@example.com", "Dora Reis")
    order = buy(client, gala, 2, buyer=headers)
    db.session.execute(
        update(PartnerUser).where(PartnerUser.username == "dora@example.com").values(locale="pt_BR")
    )
    db.session.commit()
    _login(client, "dora@example.com")
    response = client.get(f"/orders/{order['id']}/tickets.pdf")  # in the language she chose
    assert response.status_code == 200
    texts = [_page_text(page) for page in _pages(response.data)]
    assert len(texts) == 2
    for number, (text, ticket) in enumerate(zip(texts, order["tickets"], strict=True), start=1):
        assert "Ópera — Noite de Gala «Carmen»" in text  # beyond Latin-1: the bundled font
        assert "Organizado por Aurora Produções" in text
        assert "20/03/2027 19:30" in text  # Manaus' clock, not UTC's 23:30
        assert "Teatro Amazonas, Manaus" in text
        assert f"Ingresso {number} de 2" in text
        assert ticket["section"] in text and ticket["spot"] in text
        assert "Inteira" in text and "R$ 100,00" in text
        assert "Dora Reis" in text  # the holder
        assert f"#{order['id']}" in text
        short = unb64(ticket["code"])[-6:].hex().upper()
        short = f"{short[:4]}-{short[4:8]}-{short[8:]}"
        assert f"Ingresso nº {ticket['id']} · código {short}" in text


def test_the_owner_downloads_tickets_and_calendar_from_the_shop_and_the_api(client, gala):
    headers = sign_up(client, "eva@example.com", "Eva")
    order = buy(client, gala, 2, buyer=headers)
    _login(client, "eva@example.com")
    page = client.get(f"/orders/{order['id']}").get_data(as_text=True)
    assert f'href="/orders/{order["id"]}/tickets.pdf"' in page
    assert f'href="/orders/{order["id"]}/calendar.ics"' in page
    assert "Download tickets (PDF)" in page and "Add to calendar (.ics)" in page

    for base, auth in ((f"/orders/{order['id']}", {}), (f"/api/v1/orders/{order['id']}", headers)):
        pdf = client.get(f"{base}/tickets.pdf", headers=auth)
        assert pdf.status_code == 200, base
        assert pdf.mimetype == "application/pdf"
        assert pdf.headers["Content-Disposition"] == (
            f'attachment; filename="tickets-order-{order["id"]}.pdf"'
        )
        assert "no-store" in pdf.headers["Cache-Control"]
        assert len(_pages(pdf.data)) == 2
        ics = client.get(f"{base}/calendar.ics", headers=auth)
        assert ics.status_code == 200, base
        assert ics.mimetype == "text/calendar"
        assert ics.headers["Content-Disposition"] == (
            f'attachment; filename="order-{order["id"]}.ics"'
        )
        [entry] = Calendar.from_ical(ics.data).walk("VEVENT")
        assert str(entry["uid"]) == f"order-{order['id']}-event-{gala.id}@bilheteria"
        start, end = entry.decoded("dtstart"), entry.decoded("dtend")
        assert str(start.tzinfo) == "America/Manaus" and (start.hour, start.minute) == (19, 30)
        assert end - start == dt.timedelta(hours=2, minutes=30)
        assert entry["dtstart"].params["TZID"] == "America/Manaus"
        assert str(entry["summary"]) == "Ópera — Noite de Gala «Carmen»"
        assert str(entry["location"]) == "Teatro Amazonas, Manaus"
        assert str(entry["url"]).endswith(f"/orders/{order['id']}")
        for ticket in order["tickets"]:
            assert f"{ticket['section']} {ticket['spot']}" in str(entry["description"])
        assert Calendar.from_ical(ics.data).walk("VTIMEZONE")  # the zone travels with it


def test_another_customers_or_a_missing_order_is_not_found_and_an_unpaid_one_a_conflict(
    client, gala
):
    owner = sign_up(client, "fabio@example.com", "Fabio")
    order = buy(client, gala, 1, buyer=owner)
    other = sign_up(client, "gil@example.com", "Gil")
    hold = client.post(
        "/api/v1/holds/",
        json={"event_id": gala.id, "section_id": gala.sections[0].id, "quantity": 1},
        headers=other,
    ).get_json()["result"]
    declined = pay(client, other, hold["id"], card_token(client, DECLINED))
    assert declined.status_code == 402
    unpaid_id = db.session.scalar(
        select(Order.id).join(Customer).where(Customer.email == "gil@example.com")
    )
    assert db.session.get(Order, unpaid_id).status == "pending"  # charged nothing, paid nothing
    _login(client, "gil@example.com")
    for document in ("tickets.pdf", "calendar.ics"):
        assert client.get(f"/orders/{order['id']}/{document}").status_code == 404
        assert client.get(f"/orders/999999/{document}").status_code == 404
        api = client.get(f"/api/v1/orders/{order['id']}/{document}", headers=other)
        assert api.status_code == 404 and api.get_json()["error"] == "not_found"
        assert client.get(f"/api/v1/orders/999999/{document}", headers=other).status_code == 404
        refused = client.get(f"/api/v1/orders/{unpaid_id}/{document}", headers=other)
        assert refused.status_code == 409
        assert refused.get_json()["error"] == "no_valid_tickets"
        assert client.get(f"/orders/{unpaid_id}/{document}").status_code == 409
    # Signed out, the shop asks to sign in first; the API without a token refuses.
    client.get("/logout/")
    assert client.get(f"/orders/{order['id']}/tickets.pdf").status_code == 302
    assert client.get(f"/api/v1/orders/{order['id']}/tickets.pdf").status_code == 401
