"""The customer pages without JavaScript, through the test client: search, sign-up, the event
page, and the whole purchase with plain forms (best-available hold, the acquirer's card form with
a return URL, the pay form, the order with its QR codes)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import (
    Customer,
    EventSpot,
    Hold,
    HoldStatus,
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    SpotStatus,
    Ticket,
)
from app.models.base import utcnow
from app.services.catalog import PAGE_SIZE
from tests.support.builders import make_event, make_partner
from tests.support.database import count
from tests.support.pages import (
    alerts,
    another_client,
    buy_through_pages,
    card_form,
    field_error,
    field_value,
    hold_form,
    listed,
    page_sign_up,
    path_of,
    pay_form,
    text,
)
from tests.support.shop import APPROVED, CUSTOMER_PASSWORD, DECLINED, expire, hold_seats, sign_up


@pytest.fixture
def on_sale():
    """Aurora Live, of 10 seats (rows A and B), whose counts the pages show: the suite's
    ``on_sale`` is replaced here."""
    event = make_event(make_partner("Aurora"), "Aurora Live", rows=("A", "B"), seats=5)
    event.publish()
    db.session.commit()
    return event


# ---------------------------------------------------------------------------------------------
# Home: search and listing


@pytest.fixture
def catalogue():
    """Three events on sale and three that are not (a draft, a cancelled one, one whose sales
    closed), each of the latter matching the "rock" and "Recife" searches."""
    partner = make_partner("Aurora")
    now = utcnow()

    def event(name, city, category, days, price, publish=True):
        event = make_event(partner, name, city=city, category=category, rows=("A", "A"), seats=2)
        event.starts_at = now + dt.timedelta(days=days)
        event.ends_at = event.starts_at + dt.timedelta(hours=3)
        event.sections[0].price_cents = price
        if publish:
            event.publish()
        db.session.commit()
        return event

    events = {
        "rock": event("Rock Night", "Recife", "music", 10, 5000),
        "jazz": event("Jazz Evening", "Sao Paulo", "music", 40, 15000),
        "comedy": event("Comedy Club", "Recife", "comedy", 70, 30000),
        "draft": event("Rock Draft", "Recife", "music", 12, 5000, publish=False),
        "cancelled": event("Rock Cancelled", "Olinda", "theatre", 14, 5000),
        "closed": event("Rock Closed", "Recife", "music", 16, 5000),
    }
    events["cancelled"].cancel("The band split up.")
    events["closed"].sales_start = now - dt.timedelta(days=2)
    events["closed"].sales_end = now - dt.timedelta(days=1)
    db.session.commit()
    return events


def test_home_lists_only_published_events_on_sale_earliest_first(client, catalogue):
    response = client.get("/")
    assert response.status_code == 200
    expected = [catalogue[k].id for k in ("rock", "jazz", "comedy")]
    assert listed(response) == expected
    page = text(response)
    assert "3 events on sale" in page
    for name in ("Rock Draft", "Rock Cancelled", "Rock Closed"):
        assert name not in page
    # The filters offer only cities and categories with events on sale.
    assert "Olinda" not in page and "theatre" not in page
    assert "from R$50.00" in page  # the cheapest section of Rock Night


def _day(offset: int) -> str:
    return (utcnow().date() + dt.timedelta(days=offset)).isoformat()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=rock", ["rock"]),
        ("q=ROCK+night", ["rock"]),
        ("q=recife", ["rock", "comedy"]),  # the city is searched too
        ("q=nothing-like-this", []),
        ("city=Recife", ["rock", "comedy"]),
        ("city=sao+paulo", ["jazz"]),  # any case
        ("category=comedy", ["comedy"]),
        ("city=Recife&category=music", ["rock"]),
        ("date_from={+30}", ["jazz", "comedy"]),
        ("date_from={+30}&date_to={+50}", ["jazz"]),
        ("date_to={+20}", ["rock"]),
        ("price_min=100&price_max=200", ["jazz"]),
        ("price_max=150.00", ["rock", "jazz"]),  # inclusive
        ("price_max=150%2C00", ["rock", "jazz"]),  # 150,00: a comma reads too
        ("price_min=150%2C01&price_max=1.000%2C00", ["comedy"]),  # R$ 150,01 to R$ 1.000,00
        ("price_min=R%24+149%2C99&price_max=1%2C000.00", ["jazz", "comedy"]),
        ("price_min=250", ["comedy"]),
        ("q=rock&price_min=100", []),
    ],
)
def test_search_filters(client, catalogue, query, expected):
    query = re.sub(r"\{\+(\d+)\}", lambda m: _day(int(m.group(1))), query)
    response = client.get(f"/?{query}")
    assert response.status_code == 200
    assert listed(response) == [catalogue[k].id for k in expected], query
    if not expected:
        assert "No events match" in text(response)
    assert alerts(response) == []


def test_the_listing_pages_and_keeps_the_filters(client):
    partner = make_partner("Aurora")
    now = utcnow()
    ids = []
    for index in range(PAGE_SIZE + 2):
        event = make_event(partner, f"Show {index:02d}", rows=("A", "A"), seats=1)
        event.starts_at = now + dt.timedelta(days=10 + index)
        event.ends_at = event.starts_at + dt.timedelta(hours=2)
        event.publish()
        db.session.commit()
        ids.append(event.id)
    first = client.get("/?q=show")
    assert listed(first) == ids[:PAGE_SIZE]
    assert "Page 1 of 2" in text(first)
    assert 'href="/?q=show&amp;page=2"' in text(first)
    second = client.get("/?q=show&page=2")
    assert listed(second) == ids[PAGE_SIZE:]
    assert "Page 2 of 2" in text(second) and 'href="/?q=show&amp;page=1"' in text(second)
    beyond = client.get("/?q=show&page=99")  # clamped to the last page
    assert listed(beyond) == ids[PAGE_SIZE:]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("price_min=abc", "price_min must be a number such as 100,00."),
        ("price_max=-5", "price_max must be a positive amount."),
        (
            "price_max=1.000",
            'price_max: "1.000" is ambiguous: write 1000 for the whole number,'
            " or give the decimals as 100,00.",
        ),
        (
            "price_min=1.00,0",
            "price_min: Write the number as 100,00: groups of three digits and one decimal mark.",
        ),
        ("date_from=31/01/2027", "date_from must be a date such as 2027-01-31."),
        ("date_to=2027-02-30", "date_to must be a date such as 2027-01-31."),
        ("page=two", "page must be a whole number."),
    ],
)
def test_an_invalid_filter_shows_a_message_not_an_error(client, on_sale, query, message):
    response = client.get(f"/?{query}")
    assert response.status_code == 200
    assert alerts(response) == [message]
    assert listed(response) == [on_sale.id]  # the search falls back to every event


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("date_to=9999-12-31", True),
        ("price_max=1e30", True),
        ("price_max=99999999", True),  # BRL 99,999,999: more cents than 32 bits hold
        ("date_from=9999-12-31", False),
    ],
)
def test_an_out_of_range_filter_is_not_a_server_error(client, on_sale, query, matches):
    response = client.get(f"/?{query}")
    assert response.status_code == 200
    # Either the filter is refused with a message, or it is applied.
    assert alerts(response) or listed(response) == ([on_sale.id] if matches else [])


# ---------------------------------------------------------------------------------------------
# Sign-up


def test_the_sign_up_page_creates_the_customer_and_logs_in(client):
    form = client.get("/signup")
    assert form.status_code == 200 and 'name="email"' in text(form)
    response = client.post(
        "/signup",
        data={"name": "Ana Souza", "email": " Ana@Example.com ", "password": CUSTOMER_PASSWORD},
    )
    assert response.status_code == 302 and path_of(response) == "/"
    customer = db.session.scalars(select(Customer)).one()
    assert (customer.name, customer.email) == ("Ana Souza", "ana@example.com")
    home = client.get("/")
    assert "Welcome, Ana Souza!" in alerts(home)
    assert "My orders" in text(home) and "Log out" in text(home)
    assert client.get("/orders").status_code == 200  # logged in


def test_sign_up_goes_back_to_a_local_next_page_only(client):
    back = client.post(
        "/signup?next=/events/7",
        data={"name": "Ana", "email": "ana@example.com", "password": CUSTOMER_PASSWORD},
    )
    assert path_of(back) == "/events/7"
    away = another_client(client).post(
        "/signup?next=//evil.example/x",
        data={"name": "Bia", "email": "bia@example.com", "password": CUSTOMER_PASSWORD},
    )
    assert path_of(away) == "/" and "evil" not in away.headers["Location"]


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "Give a valid email address."),
        ({"password": "short"}, "password", "The password needs at least 8 characters."),
        ({"name": "  "}, "name", "Give your name."),
    ],
)
def test_a_bad_sign_up_field_is_shown_with_the_typed_values_kept(client, form, field, message):
    data = {"name": "Ana Souza", "email": "ana@example.com", "password": CUSTOMER_PASSWORD} | form
    response = client.post("/signup", data=data)
    assert response.status_code == 422
    page = text(response)
    assert field_error(page, field) == message
    assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', page)
    assert field_value(page, "name") == data["name"]
    assert field_value(page, "email") == data["email"]
    assert field_value(page, "password") == ""  # never sent back
    assert data["password"] not in page
    assert count(Customer) == 0
    assert client.get("/orders").status_code == 302  # not logged in


def test_typed_values_are_escaped_when_shown_again(client):
    name = '"><script>alert(1)</script>'
    response = client.post(
        "/signup", data={"name": name, "email": "x", "password": CUSTOMER_PASSWORD}
    )
    assert response.status_code == 422
    assert "<script>alert(1)" not in text(response)
    assert field_value(text(response), "name") == name


def test_a_taken_email_is_refused(client):
    page_sign_up(client)
    again = another_client(client).post(
        "/signup", data={"name": "Other", "email": "ANA@example.com", "password": CUSTOMER_PASSWORD}
    )
    assert again.status_code == 422
    assert field_error(text(again), "email") == "An account with this email already exists: log in."
    assert field_value(text(again), "name") == "Other"
    assert count(Customer) == 1


# ---------------------------------------------------------------------------------------------
# Event page


def _section_rows(response) -> dict[str, tuple[str, int]]:
    rows = re.findall(
        r"<tr>\s*<td>([^<]+?) <span[^>]*>[^<]*</span></td>\s*<td>([^<]+)</td>\s*<td>(\d+)</td>",
        text(response),
    )
    return {name: (price, int(available)) for name, price, available in rows}


def test_the_event_page_shows_sections_with_price_and_availability(client):
    event = make_event(make_partner("Aurora"), "Aurora Live", sections=2, seats=5)
    event.sections[0].price_cents = 5000
    event.sections[1].price_cents = 12345
    event.sections[1].spots[0].status = SpotStatus.BLOCKED.value
    event.publish()
    db.session.commit()
    hold_seats(client, sign_up(client), event, count=3)  # three of section 1 held
    response = client.get(f"/events/{event.id}")
    assert response.status_code == 200
    assert _section_rows(response) == {
        "Section 1": ("R$50.00", 7),
        "Section 2": ("R$123.45", 9),
    }
    page = text(response)
    assert page.count(f'action="/events/{event.id}/hold"') >= 2
    for section in event.sections:
        assert f'name="section_id" value="{section.id}"' in page


def test_a_sold_out_section_offers_no_hold_form(client, on_sale):
    for spot in on_sale.sections[0].spots:
        spot.status = SpotStatus.BLOCKED.value
    db.session.commit()
    response = client.get(f"/events/{on_sale.id}")
    assert _section_rows(response) == {"Section 1": ("R$100.00", 0)}
    assert "Sold out" in text(response)
    assert "Best available" not in text(response)  # no hold form
    assert "Join the waiting list" in text(response)  # its waiting list instead


def test_a_draft_or_missing_event_answers_404(client):
    draft = make_event(make_partner("Aurora"), "Secret Show")
    assert client.get(f"/events/{draft.id}").status_code == 404
    assert client.get("/events/999999").status_code == 404


def test_a_cancelled_event_says_so_and_sells_nothing(client, on_sale):
    on_sale.cancel("The band split up.")
    db.session.commit()
    response = client.get(f"/events/{on_sale.id}")
    assert response.status_code == 200
    assert "This event is cancelled: The band split up." in text(response)
    assert 'name="section_id"' not in text(response)


# ---------------------------------------------------------------------------------------------
# The purchase without JavaScript


def test_the_whole_purchase_works_without_javascript(client, on_sale):
    page_sign_up(client)
    event_page = text(client.get(f"/events/{on_sale.id}"))
    assert 'name="quantity"' in event_page
    hold = client.post(
        f"/events/{on_sale.id}/hold", data={"section_id": on_sale.sections[0].id, "quantity": 2}
    )
    assert hold.status_code == 302
    hold_id = int(re.fullmatch(r"/holds/(\d+)", path_of(hold)).group(1))
    stored = db.session.get(Hold, hold_id)
    assert stored.status == HoldStatus.ACTIVE and [s.label for s in stored.spots] == ["A-1", "A-2"]

    hold_page = text(client.get(f"/holds/{hold_id}"))
    assert "A-1" in hold_page and "A-2" in hold_page and "R$200.00" in hold_page
    assert 'action="/sim-acquirer/v1/tokens"' in hold_page
    assert field_value(hold_page, "return_url") == f"/holds/{hold_id}"
    assert "Pay now" not in hold_page

    back = card_form(client, hold_id, "4242 4242 4242 4242")
    assert back.status_code == 303
    location = urlsplit(back.headers["Location"])
    assert location.path == f"/holds/{hold_id}" and not location.netloc
    query = parse_qs(location.query)
    assert query["card_brand"] == ["visa"] and query["card_last4"] == ["4242"]
    assert query["card_token"][0].startswith("tok_")
    assert "4242424242424242" not in back.headers["Location"]

    confirm = client.get(path_of(back))
    assert confirm.status_code == 200
    page = text(confirm)
    assert "Pay now" in page and "visa" in page and "4242" in page
    assert 'action="/sim-acquirer/v1/tokens"' not in page  # the card form gave way
    form = pay_form(page)
    assert form["card_token"] == query["card_token"][0]
    assert len(form["idempotency_key"]) >= 8

    paid = client.post(f"/holds/{hold_id}/checkout", data=form)
    assert paid.status_code == 302
    order_id = int(re.fullmatch(r"/orders/(\d+)", path_of(paid)).group(1))
    order_page = client.get(f"/orders/{order_id}")
    assert order_page.status_code == 200
    assert alerts(order_page) == ["Payment approved: here are your tickets."]
    again = client.post(f"/holds/{hold_id}/checkout", data=form)  # a double submit
    assert again.status_code == 302 and path_of(again) == f"/orders/{order_id}"
    # The same key replays the first result (not "already paid"): one charge, one payment.
    assert alerts(client.get(path_of(again))) == ["Payment approved: here are your tickets."]
    assert count(Payment) == 1
    order = db.session.get(Order, order_id)
    assert order.status == OrderStatus.PAID and order.total_cents == 20000
    assert order.payments[0].status == PaymentStatus.CAPTURED

    page = text(order_page)
    assert page.count("<svg") == 2 == count(Ticket, Ticket.order_id == order_id)
    assert "A-1" in page and "A-2" in page and "4242" in page
    assert f'href="/orders/{order_id}"' in text(client.get("/orders"))
    assert "This hold is paid" in text(client.get(f"/holds/{hold_id}"))


def test_paying_again_from_a_reloaded_page_charges_nothing_and_shows_the_order(client, on_sale):
    page_sign_up(client)
    hold_id = hold_form(client, on_sale)
    confirm_url = path_of(card_form(client, hold_id))
    first = pay_form(text(client.get(confirm_url)))
    reloaded = pay_form(text(client.get(confirm_url)))
    assert first["idempotency_key"] != reloaded["idempotency_key"]  # a new key per page view
    paid = client.post(f"/holds/{hold_id}/checkout", data=first)
    client.get(path_of(paid))
    again = client.post(f"/holds/{hold_id}/checkout", data=reloaded)
    assert path_of(again) == path_of(paid)
    assert alerts(client.get(path_of(again))) == ["This hold is already paid for."]
    assert count(Payment) == 1


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"number": "4242424242424241"}, "number", "The card number is not valid."),
        ({"number": "4242 42"}, "number", "The card number must have 12 to 19 digits."),
        ({"exp_year": "2001"}, "exp_year", "The card has expired."),
        ({"cvc": "12"}, "cvc", "The CVC has 3 digits."),
    ],
)
def test_a_bad_card_comes_back_to_the_hold_page_with_the_field_error(
    client, on_sale, fields, field, message
):
    page_sign_up(client)
    hold_id = hold_form(client, on_sale)
    back = card_form(client, hold_id, **fields)
    assert back.status_code == 303
    query = parse_qs(urlsplit(back.headers["Location"]).query)
    assert (query.pop("card_error"), query.pop("card_field")) == ([message], [field])
    # The expiry comes back to be shown again; never the number, the CVC or the name.
    assert set(query) == {"card_exp_month", "card_exp_year"}
    page = text(client.get(path_of(back)))
    assert field_error(page, field) == message
    assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', page)
    assert "Pay now" not in page


def test_the_acquirer_sends_the_browser_back_to_this_site_only(client):
    for return_url in ("https://evil.example/x", "//evil.example/x"):
        response = client.post(
            "/sim-acquirer/v1/tokens",
            data={"number": APPROVED, "exp_month": "12", "exp_year": "2040", "cvc": "123",
                  "holder_name": "Ana", "return_url": return_url},
        )  # fmt: skip
        assert response.status_code == 400, return_url
        assert "Location" not in response.headers


def test_a_declined_card_on_the_pay_form_keeps_the_hold(client, on_sale):
    page_sign_up(client)
    hold_id = hold_form(client, on_sale)
    confirm = client.get(path_of(card_form(client, hold_id, DECLINED)))
    declined = client.post(f"/holds/{hold_id}/checkout", data=pay_form(text(confirm)))
    assert declined.status_code == 302 and path_of(declined) == f"/holds/{hold_id}"
    page = client.get(f"/holds/{hold_id}")
    assert "Your card was declined." in alerts(page)
    assert 'action="/sim-acquirer/v1/tokens"' in text(page)  # enter another card
    assert db.session.get(Hold, hold_id).status == HoldStatus.ACTIVE
    assert db.session.scalars(select(Payment.status)).all() == [PaymentStatus.DECLINED]
    assert count(Order, Order.status == OrderStatus.PAID) == 0


def test_an_expired_hold_page_says_so(client, on_sale):
    page_sign_up(client)
    hold_id = hold_form(client, on_sale)
    expire(hold_id)
    page = text(client.get(f"/holds/{hold_id}"))
    assert "Your hold has expired." in page
    assert 'action="/sim-acquirer/v1/tokens"' not in page


# ---------------------------------------------------------------------------------------------
# Who may see what


def test_a_visitor_is_sent_to_log_in_and_back(client, on_sale):
    response = client.post(
        f"/events/{on_sale.id}/hold", data={"section_id": on_sale.sections[0].id, "quantity": 1}
    )
    assert response.status_code == 302
    assert path_of(response) == f"/login/?next=%2Fevents%2F{on_sale.id}"
    assert count(Hold) == 0
    for url in ("/orders", "/orders/1", "/holds/1"):
        answer = client.get(url)
        assert answer.status_code == 302, url
        assert path_of(answer) == "/login/?next=" + url.replace("/", "%2F")
    for url in ("/holds/1/checkout", "/holds/1/release"):
        assert path_of(client.post(url)).startswith("/login/?next="), url
    # Logging in from there comes back to the event.
    sign_up(another_client(client))
    login = client.post(
        path_of(response), data={"username": "ana@example.com", "password": CUSTOMER_PASSWORD}
    )
    assert path_of(login) == f"/events/{on_sale.id}"


def test_another_customers_hold_and_order_answer_404(client, on_sale):
    page_sign_up(client)
    hold_id, order_id = buy_through_pages(client, on_sale)
    other_hold = hold_form(client, on_sale, quantity=1)
    bia = another_client(client)
    page_sign_up(bia, "bia@example.com", "Bia")
    assert client.get(f"/orders/{order_id}").status_code == 200
    assert bia.get(f"/orders/{order_id}").status_code == 404
    assert bia.get(f"/holds/{hold_id}").status_code == 404
    assert bia.get(f"/holds/{other_hold}").status_code == 404
    assert f"/orders/{order_id}" not in text(bia.get("/orders"))
    # Nor can Bia release or pay Ana's hold.
    bia.post(f"/holds/{other_hold}/release")
    assert db.session.get(Hold, other_hold).status == HoldStatus.ACTIVE
    token = parse_qs(urlsplit(card_form(bia, other_hold).headers["Location"]).query)
    bia.post(
        f"/holds/{other_hold}/checkout",
        data={"card_token": token["card_token"][0], "idempotency_key": uuid.uuid4().hex},
    )
    assert count(Payment) == 1  # Ana's purchase only


def test_releasing_a_hold_from_its_page_frees_its_spots(client, on_sale):
    page_sign_up(client)
    hold_id = hold_form(client, on_sale, quantity=3)
    spot_ids = [s.id for s in db.session.get(Hold, hold_id).spots]
    event_page = client.get(f"/events/{on_sale.id}")
    assert _section_rows(event_page) == {"Section 1": ("R$100.00", 7)}
    released = client.post(f"/holds/{hold_id}/release")
    assert released.status_code == 302 and path_of(released) == f"/events/{on_sale.id}"
    event_page = client.get(f"/events/{on_sale.id}")
    assert "Your seats were released." in alerts(event_page)
    assert _section_rows(event_page) == {"Section 1": ("R$100.00", 10)}
    assert db.session.get(Hold, hold_id).status == HoldStatus.RELEASED
    statuses = db.session.scalars(select(EventSpot.status).where(EventSpot.id.in_(spot_ids)))
    assert set(statuses) == {SpotStatus.AVAILABLE}
    assert 'action="/sim-acquirer/v1/tokens"' not in text(client.get(f"/holds/{hold_id}"))


def test_logging_in_from_the_pay_form_comes_back_to_a_page(client, on_sale):
    page_sign_up(client)
    hold_id = hold_form(client, on_sale)
    visitor = another_client(client)  # e.g. Ana's session ended on the hold page
    to_login = visitor.post(f"/holds/{hold_id}/checkout")
    logged_in = visitor.post(
        path_of(to_login), data={"username": "ana@example.com", "password": CUSTOMER_PASSWORD}
    )
    assert logged_in.status_code == 302
    assert visitor.get(path_of(logged_in)).status_code == 200
