"""The shop's pages without JavaScript, through the test client: reading what a page shows and
posting its forms as a browser would, up to a whole purchase (``buy_through_pages``)."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlsplit

from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import Customer, Event
from app.models.base import utcnow
from tests.support.shop import APPROVED, CUSTOMER_PASSWORD, confirm_email


def text(response: Any) -> str:
    return response.get_data(as_text=True)


def listed(response: Any) -> list[int]:
    """Ids of the event cards on a listing page, in page order."""
    return [int(i) for i in re.findall(r'class="card" href="/events/(\d+)"', text(response))]


def alerts(response: Any) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'role="alert">([^<]*)<', text(response))]


def field_value(page: str, name: str) -> str | None:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page)
    return html.unescape(match.group(1)) if match else None


def field_error(page: str, name: str) -> str | None:
    """The error shown under an input of the sign-up or card form."""
    match = re.search(
        rf'<input[^>]*name="{name}"[^>]*>\s*<span class="field-error"[^>]*>([^<]*)</span>', page
    )
    return html.unescape(match.group(1)).strip() if match else None


def path_of(response: Any) -> str:
    """Where a redirect goes, without the host."""
    location = urlsplit(response.headers["Location"])
    return location.path + (f"?{location.query}" if location.query else "")


def page_sign_up(
    client: FlaskClient,
    email: str = "ana@example.com",
    name: str = "Ana Souza",
    *,
    confirmed: bool = True,
) -> Any:
    """The sign-up form; the client is then logged in as the new customer. ``confirmed``: the
    address counts as confirmed (``shop.sign_up``)."""
    response = client.post(
        "/signup", data={"name": name, "email": email, "password": CUSTOMER_PASSWORD}
    )
    assert response.status_code == 302, text(response)[:500]
    if confirmed:
        with client.application.app_context():
            customer_id = db.session.scalar(
                select(Customer.id).where(Customer.email == email.strip().lower())
            )
        confirm_email(client.application, customer_id)
    return response


def another_client(client: FlaskClient) -> FlaskClient:
    """A second browser (its own cookies) on the same app."""
    return client.application.test_client()


def hold_form(client: FlaskClient, event: Event, quantity: int = 2, section: int = 0) -> int:
    """The best-available form of the event page; returns the new hold's id."""
    response = client.post(
        f"/events/{event.id}/hold",
        data={"section_id": event.sections[section].id, "quantity": quantity},
    )
    assert response.status_code == 302, text(response)[:500]
    match = re.fullmatch(r"/holds/(\d+)", path_of(response))
    assert match, response.headers["Location"]
    return int(match.group(1))


def card_form(client: FlaskClient, hold_id: int, number: str = APPROVED, **fields: str) -> Any:
    """The card form of the hold page, posted to the acquirer as a browser would."""
    data = {
        "number": number,
        "exp_month": "12",
        "exp_year": str(utcnow().year + 2),
        "cvc": "123",
        "holder_name": "Ana Souza",
        "return_url": f"/holds/{hold_id}",
    } | fields
    return client.post("/sim-acquirer/v1/tokens", data=data)


def pay_form(page: str) -> dict[str, str]:
    """The hidden fields of the "Pay now" form."""
    form = page[page.index('id="pay-form"') :]
    form = form[: form.index("</form>")]
    fields = ("card_token", "idempotency_key", "expected_total_cents")
    return {name: field_value(form, name) or "" for name in fields}


def buy_through_pages(
    client: FlaskClient, event: Event, quantity: int = 2, number: str = APPROVED
) -> tuple[int, int]:
    """The whole purchase with the pages' forms, by the customer logged in on ``client``;
    returns (hold id, order id). A purchase through the JSON API is ``shop.buy``."""
    hold_id = hold_form(client, event, quantity)
    back = card_form(client, hold_id, number)
    confirm = client.get(path_of(back))
    paid = client.post(f"/holds/{hold_id}/checkout", data=pay_form(text(confirm)))
    assert paid.status_code == 302
    match = re.fullmatch(r"/orders/(\d+)", path_of(paid))
    assert match, paid.headers["Location"]
    return hold_id, int(match.group(1))
