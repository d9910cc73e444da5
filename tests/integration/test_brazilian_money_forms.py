"""Money typed in the dashboard's forms as Brazilians write it: a section's price "150,00" or
"1.234,56", a partner's fee "7,5" % and "0,50" per ticket (no form asks for cents); what could
mean two amounts is refused at its field, and figures are shown back in the reader's locale."""

from __future__ import annotations

import html
import re
from decimal import Decimal

import pytest

from app.extensions import db
from app.models import EventSection, Partner
from tests.support.builders import login, make_event, make_partner, make_user

NBSP = "\u00a0"


@pytest.fixture
def alice(client, two_partners):
    """The test client signed in as alice, a user of partner A."""
    login(client, "alice")
    return client


def page_of(response) -> str:
    return response.get_data(as_text=True)


def field_errors(page: str, name: str) -> list[str]:
    """The errors FAB's form shows under the named input."""
    match = re.search(
        rf'<input[^>]*name="{name}"[^>]*>\s*<span class="help-block">[^<]*</span>\s*'
        r'<div class="alert alert-danger">(.*?)</div>',
        page,
        re.S,
    )
    if match is None:
        return []
    return [html.unescape(line.strip()) for line in match.group(1).splitlines() if line.strip()]


def input_value(page: str, name: str) -> str | None:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page)
    return html.unescape(match.group(1)) if match else None


def add_section(alice, price: str):
    event = make_event(db.session.query(Partner).filter_by(name="Partner A").one(), sections=0)
    return alice.post(
        "/eventsectionview/add",
        data={"event": str(event.id), "name": "VIP", "kind": "seated", "price_amount": price},
    )


@pytest.mark.parametrize(
    ("typed", "cents"),
    [("150,00", 15000), ("150.00", 15000), ("1.234,56", 123456), ("1,234.56", 123456),
     ("R$ 80,5", 8050), ("99", 9900)],
)  # fmt: skip
def test_a_section_price_takes_a_comma_or_a_point(alice, typed, cents):
    response = add_section(alice, typed)
    assert response.status_code == 302, field_errors(page_of(response), "price_amount")
    assert db.session.query(EventSection).filter_by(name="VIP").one().price_cents == cents


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("1.234", '"1.234" is ambiguous: write 1234 for the whole number, or give the decimals'
         " as 150,00."),
        ("1,234", '"1,234" is ambiguous: write 1234 for the whole number, or give the decimals'
         " as 150,00."),
        ("1.23,45", "Write the number as 150,00: groups of three digits and one decimal mark."),
        ("cento e cinquenta", "Give a number such as 150,00."),
        ("1234,567", "The price has at most two decimal places."),
        ("-1,00", "Number must be at least 0."),
    ],
)  # fmt: skip
def test_an_unclear_price_is_refused_at_its_field_and_kept_as_typed(alice, typed, error):
    response = add_section(alice, typed)
    page = page_of(response)
    assert response.status_code == 200
    assert field_errors(page, "price_amount") == [error]
    assert input_value(page, "price_amount") == typed  # to correct, not to type again
    assert db.session.query(EventSection).filter_by(name="VIP").count() == 0


def test_the_edit_form_shows_the_price_as_the_reader_writes_it(alice, two_partners):
    alice.environ_base["HTTP_ACCEPT_LANGUAGE"] = "pt-BR"  # the suite's client reads English
    section = two_partners["event_a"].sections[0]
    section.price_cents = 123456
    db.session.commit()
    page = page_of(alice.get(f"/eventsectionview/edit/{section.id}"))
    assert input_value(page, "price_amount") == "1.234,56"
    assert "cents" not in page.lower()
    shown = page_of(alice.get(f"/eventsectionview/show/{section.id}"))
    assert f"R${NBSP}1.234,56" in shown
    english = alice.get(
        f"/eventsectionview/edit/{section.id}", headers={"Accept-Language": "en-US,en;q=0.9"}
    )
    assert input_value(page_of(english), "price_amount") == "1,234.56"
    saved = alice.post(  # and what it shows reads back the same
        f"/eventsectionview/edit/{section.id}",
        data={"name": section.name, "kind": "seated", "price_amount": "1.234,56", "position": 0},
    )
    assert saved.status_code == 302
    db.session.refresh(section)
    assert section.price_cents == 123456


@pytest.fixture
def root(client):
    make_user("root", "Admin")
    login(client, "root")
    return client


def test_the_partner_form_takes_fees_with_a_comma_and_money_not_cents(root):
    root.environ_base["HTTP_ACCEPT_LANGUAGE"] = "pt-BR"  # the suite's client reads English
    form = page_of(root.get("/partnerview/add"))
    assert "cents" not in form.lower()
    assert 'name="fee_fixed_amount"' in form and 'name="fee_fixed_cents"' not in form
    response = root.post(
        "/partnerview/add",
        data={
            "name": "Samba Produções",
            "fee_percent": "7,5",
            "fee_fixed_amount": "0,50",
            "reserve_percent": "2,25",
        },
    )
    assert response.status_code == 302, page_of(response)[-3000:]
    partner = db.session.query(Partner).filter_by(name="Samba Produções").one()
    assert partner.fee_percent == Decimal("7.50")
    assert partner.fee_fixed_cents == 50
    assert partner.reserve_percent == Decimal("2.25")
    edit = page_of(root.get(f"/partnerview/edit/{partner.id}"))
    assert input_value(edit, "fee_percent") == "7,5"
    assert input_value(edit, "fee_fixed_amount") == "0,50"
    assert input_value(edit, "reserve_percent") == "2,25"
    listing = page_of(root.get("/partnerview/list/"))
    row = re.search(r"Samba Produções.*?</tr>", listing, re.S).group(0)
    assert re.search(r">\s*7,5\s*<", row) and re.search(r">\s*0,50\s*<", row)


@pytest.mark.parametrize(
    ("field", "typed", "error"),
    [
        ("fee_percent", "7,5,0", "Write the number as 7,5: groups of three digits and one decimal"
         " mark."),
        ("fee_percent", "sete", "Give a number such as 7,5."),
        ("fee_percent", "7,555", '"7,555" is ambiguous: write 7555 for the whole number, or give'
         " the decimals as 7,5."),
        ("fee_percent", "7,5555", "The fee percentage has at most two decimal places."),
        ("fee_fixed_amount", "0,505", "The fee per ticket has at most two decimal places."),
        ("fee_fixed_amount", "1.000", '"1.000" is ambiguous: write 1000 for the whole number, or'
         " give the decimals as 150,00."),
    ],
)  # fmt: skip
def test_an_unclear_fee_is_refused_at_its_field(root, field, typed, error):
    partner = make_partner("Partner A")
    form = {"name": partner.name, "fee_percent": "10", "fee_fixed_amount": "1,00"}
    response = root.post(f"/partnerview/edit/{partner.id}", data={**form, field: typed})
    page = page_of(response)
    assert response.status_code == 200
    assert field_errors(page, field) == [error]
    db.session.expire_all()
    kept = db.session.get(Partner, partner.id)
    assert (kept.fee_percent, kept.fee_fixed_cents) == (Decimal("10.00"), 100)


def test_a_fee_that_leaves_the_partner_nothing_is_shown_at_the_fixed_fee(root):
    root.environ_base["HTTP_ACCEPT_LANGUAGE"] = "pt-BR"  # the suite's client reads English
    partner = make_partner("Partner A")
    event = make_event(partner)
    event.sections[0].price_cents = 112
    db.session.commit()
    form = {"name": partner.name, "fee_percent": "10", "fee_fixed_amount": "1,01"}
    page = page_of(root.post(f"/partnerview/edit/{partner.id}", data=form))
    assert field_errors(page, "fee_fixed_amount") == [
        "Essas taxas consumiriam todo o preço dos ingressos de 1,12: uma venda precisa deixar"
        " algo para o parceiro."
    ]
