"""What customers (or anyone) type into the shop's addresses and forms: a return address goes
to this site only, the pager carries the search filters only, a bad filter is refused alone, a
hold form's numbers are whole numbers in range, a missing or another customer's hold or event is
404 for POSTs too, and the simulated acquirer takes ASCII digits only."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Customer, Hold, HoldStatus, Payment
from app.models.base import MAX_INT, utcnow
from app.services.catalog import PAGE_SIZE
from app.sim_acquirer.models import SimToken
from tests.support.builders import make_event, make_partner
from tests.support.database import count
from tests.support.pages import (
    alerts,
    another_client,
    card_form,
    field_error,
    field_value,
    hold_form,
    listed,
    page_sign_up,
    path_of,
    text,
)
from tests.support.shop import APPROVED, CUSTOMER_PASSWORD

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
CARD = {"number": APPROVED, "exp_month": "12", "exp_year": str(utcnow().year + 2),
        "cvc": "123", "holder_name": "Ana Souza"}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Sign-up and the acquirer's card form: back to a page of this site only


def sign_up_then(client, next_page: str):
    return client.post(
        "/signup?" + urlencode({"next": next_page}),
        data={"name": "Ana", "email": "ana@example.com", "password": CUSTOMER_PASSWORD},
    )


@pytest.mark.parametrize(
    "next_page",
    [
        "/\t/evil.example",  # browsers drop tabs and newlines: "//evil.example"
        "/\n/evil.example",
        "/\r/evil.example",
        "/\\evil.example",
        "\\/evil.example",
        "//evil.example",
        "///evil.example",
        "https://evil.example/",
        "https:/evil.example",
        "javascript:alert(1)",
        "evil.example",
        " /\t/evil.example",
        "/\u2028/evil.example",
        "",
    ],
)
def test_sign_up_goes_back_to_a_path_of_this_site_only(client, next_page):
    response = sign_up_then(client, next_page)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert count(Customer) == 1


@pytest.mark.parametrize("next_page", ["/events/7", "/events/7?from=mail#seats", "/"])
def test_sign_up_goes_back_to_a_local_page(client, next_page):
    response = sign_up_then(client, next_page)
    assert response.status_code == 302 and response.headers["Location"] == next_page


@pytest.mark.parametrize(
    "return_url", ["/holds/1\n", "/holds/1\r\nSet-Cookie: a=b", "/\t/evil.example", "/\\evil"]
)
def test_the_acquirer_refuses_a_return_address_a_browser_would_misread(client, return_url):
    response = client.post("/sim-acquirer/v1/tokens", data=CARD | {"return_url": return_url})
    assert response.status_code == 400 and "Location" not in response.headers
    assert db.session.scalars(select(SimToken)).all() == []


# ---------------------------------------------------------------------------------------------
# Home: the pager carries the search filters, nothing else


@pytest.fixture
def two_pages():
    partner = make_partner("Aurora")
    now = utcnow()
    for index in range(PAGE_SIZE + 2):
        event = make_event(partner, f"Show {index:02d}", rows=("A", "A"), seats=1)
        event.starts_at = now + dt.timedelta(days=10 + index)
        event.ends_at = event.starts_at + dt.timedelta(hours=2)
        event.publish()
    db.session.commit()


def pager_links(response) -> list[str]:
    nav = text(response).split('<nav class="pager">', 1)[1].split("</nav>", 1)[0]
    return re.findall(r'href="([^"]*)"', nav)


@pytest.mark.parametrize("query", ["values=1", "shop.home=1", "utm_source=mail", "page_x=3"])
def test_the_pager_links_carry_only_the_search_filters(client, two_pages, query):
    response = client.get(f"/?{query}", headers={"Host": "evil.example"})
    assert response.status_code == 200
    assert pager_links(response) == ["/?page=2"]
    with_filter = client.get(f"/?q=show&{query}&city=&page=2", headers={"Host": "evil.example"})
    assert with_filter.status_code == 200
    assert pager_links(with_filter) == ["/?q=show&amp;page=1"]
    assert "evil.example" not in text(response) + text(with_filter)


@pytest.mark.parametrize(
    "query", ["endpoint=x", "_method=POST", "_external=1", "_scheme=javascript", "_anchor=x"]
)
def test_url_for_keywords_in_the_query_are_refused(client, two_pages, query):
    """url_for's own arguments never reach a link (app/views/guards.py refuses them for every
    page, FAB's lists included)."""
    response = client.get(f"/?{query}", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert "evil.example" not in text(response)


# ---------------------------------------------------------------------------------------------
# Home: a bad filter is refused alone, the others stay applied


@pytest.fixture
def bossa():
    partner = make_partner("Aurora")
    now = utcnow()

    def event(name, city, days, price):
        event = make_event(partner, name, city=city, category="music", rows=("A", "A"), seats=2)
        event.starts_at = now + dt.timedelta(days=days)
        event.ends_at = event.starts_at + dt.timedelta(hours=3)
        event.sections[0].price_cents = price
        event.publish()
        db.session.commit()
        return event.id

    return {
        "early": event("Bossa Nova Early", "Recife", 10, 5000),
        "rock": event("Rock Night", "Recife", 20, 5000),
        "late": event("Bossa Nova Late", "Olinda", 30, 15000),
    }


@pytest.mark.parametrize(
    ("query", "field", "message", "expected"),
    [
        ("q=Bossa&date_from=31/12/2026", "date_from",
         "date_from must be a date such as 2027-01-31.", ["early", "late"]),
        ("q=Bossa&date_to=tomorrow&city=Recife", "date_to",
         "date_to must be a date such as 2027-01-31.", ["early"]),
        ("q=Bossa&price_max=abc", "price_max",
         "price_max must be a number such as 100,00.", ["early", "late"]),
        ("city=Recife&price_min=-1", "price_min",
         "price_min must be a positive amount.", ["early", "rock"]),
        ("price_max=0.001&q=Bossa", "price_max",
         "price_max takes at most two decimal places, such as 100,50.", ["early", "late"]),
        ("q=Bossa&price_max=100&page=two", "page",
         "page must be a whole number.", ["early"]),
    ],
)  # fmt: skip
def test_a_bad_filter_is_flagged_and_the_others_are_kept(
    client, bossa, query, field, message, expected
):
    response = client.get(f"/?{query}")
    assert response.status_code == 200
    assert listed(response) == [bossa[name] for name in expected]
    assert alerts(response) == [message]
    page = text(response)
    typed = parse_qs(query)
    for name in ("q", "date_from", "date_to", "price_min", "price_max"):
        if name in typed:  # the form keeps what was typed, the bad value too
            assert field_value(page, name) == typed[name][0], name
    assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', page) or field == "page"
    assert len(re.findall('aria-invalid="true"', page)) == (0 if field == "page" else 1)


def test_two_bad_filters_are_both_flagged(client, bossa):
    response = client.get("/?q=Bossa&date_from=x&price_min=y&city=Olinda")
    assert listed(response) == [bossa["late"]]
    assert alerts(response) == [
        "date_from must be a date such as 2027-01-31.",
        "price_min must be a number such as 100,00.",
    ]


@pytest.mark.parametrize("word", ["%", "_", "%%", "_o_k", "%ossa", "\\"])
def test_wildcards_in_the_search_words_match_themselves(client, bossa, word):
    response = client.get("/?" + urlencode({"q": word}))
    assert response.status_code == 200
    assert listed(response) == []
    assert alerts(response) == []


# ---------------------------------------------------------------------------------------------
# The hold form: whole numbers in the id columns' range


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"quantity": "99999999999999999999"}, "quantity"),
        ({"quantity": "²"}, "quantity"),
        ({"quantity": "٢"}, "quantity"),  # an Arabic-Indic 2
        ({"quantity": "-1"}, "quantity"),
        ({"quantity": "1.5"}, "quantity"),
        ({"quantity": "0"}, "quantity"),
        ({"section_id": str(MAX_INT + 1)}, "section_id"),
        ({"section_id": "99999999999999999999"}, "section_id"),
        ({"section_id": "²"}, "section_id"),
        ({"section_id": "x"}, "section_id"),
        ({"spot_ids": "²"}, "spot_ids"),
        ({"spot_ids": str(MAX_INT + 1)}, "spot_ids"),
        ({"spot_ids": ["1", "٣"]}, "spot_ids"),
        ({"spot_ids": ["1", ""]}, "spot_ids"),
    ],
)
def test_a_bad_number_in_the_hold_form_is_refused_naming_its_field(client, on_sale, form, field):
    page_sign_up(client)
    client.get("/")  # the welcome message
    data = {"section_id": str(on_sale.sections[0].id), "quantity": "1"} | form
    response = client.post(f"/events/{on_sale.id}/hold", data=data)
    assert response.status_code == 302
    assert path_of(response) == f"/events/{on_sale.id}"
    messages = alerts(client.get(path_of(response)))
    assert len(messages) == 1 and messages[0].startswith(f"{field} "), messages
    assert count(Hold) == 0


def test_a_section_of_another_event_is_a_form_error(client, on_sale):
    other = make_event(make_partner("Boreal"), "Boreal Live")
    page_sign_up(client)
    client.get("/")
    data = {"section_id": str(other.sections[0].id), "quantity": "1"}
    response = client.post(f"/events/{on_sale.id}/hold", data=data)
    assert path_of(response) == f"/events/{on_sale.id}"
    assert alerts(client.get(path_of(response))) == ["Section not found in this event."]


# ---------------------------------------------------------------------------------------------
# POSTs on a missing or another customer's hold, or on an event not on sale: 404


def assert_not_found_and_nothing_left_to_show(client, response) -> None:
    assert response.status_code == 404
    assert alerts(client.get("/orders")) == []  # no message waits for the next page


@pytest.fixture
def anas_hold(client, on_sale) -> int:
    page_sign_up(client)
    hold_id = hold_form(client, on_sale, quantity=1)
    client.get("/")  # the messages so far
    return hold_id


def test_releasing_another_customers_or_a_missing_hold_answers_404(client, anas_hold):
    bia = another_client(client)
    page_sign_up(bia, "bia@example.com", "Bia")
    bia.get("/")
    for hold_id in (anas_hold, anas_hold + 1000, MAX_INT):
        assert_not_found_and_nothing_left_to_show(bia, bia.post(f"/holds/{hold_id}/release"))
    assert db.session.get(Hold, anas_hold).status == HoldStatus.ACTIVE


def test_paying_another_customers_or_a_missing_hold_answers_404(client, anas_hold):
    bia = another_client(client)
    page_sign_up(bia, "bia@example.com", "Bia")
    bia.get("/")
    for hold_id in (anas_hold, anas_hold + 1000):
        back = card_form(bia, hold_id)
        token = parse_qs(urlsplit(back.headers["Location"]).query)["card_token"][0]
        form = {"card_token": token, "idempotency_key": uuid.uuid4().hex}
        assert_not_found_and_nothing_left_to_show(
            bia, bia.post(f"/holds/{hold_id}/checkout", data=form)
        )
    assert count(Payment) == 0
    assert db.session.get(Hold, anas_hold).status == HoldStatus.ACTIVE


def test_paying_another_customers_hold_with_an_empty_form_answers_404_too(client, anas_hold):
    """The form was checked before the hold: its message waited for Bia's next page."""
    bia = another_client(client)
    page_sign_up(bia, "bia@example.com", "Bia")
    bia.get("/")
    response = bia.post(
        f"/holds/{anas_hold}/checkout", data={"card_token": "", "idempotency_key": ""}
    )
    assert_not_found_and_nothing_left_to_show(bia, response)


def test_holding_spots_of_a_draft_or_missing_event_answers_404(client, on_sale):
    draft = make_event(make_partner("Boreal"), "Secret Show")
    page_sign_up(client)
    client.get("/")
    for event_id, section_id in ((draft.id, draft.sections[0].id), (on_sale.id + 1000, 1)):
        response = client.post(
            f"/events/{event_id}/hold", data={"section_id": str(section_id), "quantity": "1"}
        )
        assert_not_found_and_nothing_left_to_show(client, response)
    assert count(Hold) == 0


# ---------------------------------------------------------------------------------------------
# The simulated acquirer: ASCII digits only


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"number": "²" * 16}, "number"),
        ({"number": "²" * 12}, "number"),
        ({"number": APPROVED.translate(ARABIC_INDIC)}, "number"),
        ({"number": "4242424242424242²"}, "number"),
        ({"cvc": "²²²"}, "cvc"),
        ({"cvc": "123".translate(ARABIC_INDIC)}, "cvc"),
        ({"exp_month": "12".translate(ARABIC_INDIC)}, "exp_month"),
        ({"exp_month": "1_2"}, "exp_month"),
        ({"exp_month": "9" * 3500}, "exp_month"),  # more is past the 4 KB a card may take
        ({"exp_year": CARD["exp_year"].translate(ARABIC_INDIC)}, "exp_year"),
        ({"exp_year": "²⁰²⁹"}, "exp_year"),
    ],
)
def test_the_acquirer_takes_ascii_digits_only(client, fields, field):
    response = client.post("/sim-acquirer/v1/tokens", json=CARD | fields)
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert response.get_json()["field"] == field
    back = client.post("/sim-acquirer/v1/tokens", data=CARD | fields | {"return_url": "/holds/1"})
    assert back.status_code == 303
    assert parse_qs(urlsplit(back.headers["Location"]).query)["card_field"] == [field]
    assert db.session.scalars(select(SimToken)).all() == []


def test_a_card_error_keeps_the_expiry_but_never_the_number_cvc_or_name(client, anas_hold):
    typed = {"number": "4242424242424241", "cvc": "987", "holder_name": "Ana <b>Souza</b>",
             "exp_month": "11"}  # fmt: skip
    back = card_form(client, anas_hold, **typed)
    assert back.status_code == 303
    location = back.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert "4242424242424241" not in location and ["987"] not in query.values()
    assert "Souza" not in location
    page = text(client.get(path_of(back)))
    assert field_error(page, "number") == "The card number is not valid."
    assert field_value(page, "holder_name") in (None, "")
    assert field_value(page, "exp_month") == "11"
    assert field_value(page, "exp_year") == CARD["exp_year"]
    assert field_value(page, "number") in (None, "") and field_value(page, "cvc") in (None, "")
    assert "4242424242424241" not in page and 'value="987"' not in page
