"""The simulated acquirer tokenizes a valid JSON card before Flask (app/sim_acquirer/fast.py):
one INSERT, no view, the app's security headers; everything else is still the app's answer."""

from __future__ import annotations

import pytest

from app.models.base import utcnow
from app.sim_acquirer.api import card_of
from tests.support.database import statements_during
from tests.support.shop import card_fields

VIEW = "sim_acquirer.create_token"


@pytest.fixture
def view_calls(app, monkeypatch) -> list[str]:
    """The tokenize view's calls (it still answers)."""
    calls: list[str] = []
    view = app.view_functions[VIEW]

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(VIEW)
        return view(*args, **kwargs)

    monkeypatch.setitem(app.view_functions, VIEW, counted)
    return calls


def test_a_valid_card_is_tokenized_in_one_insert_without_the_view(client, view_calls):
    response, statements = statements_during(
        lambda: client.post(
            "/sim-acquirer/v1/tokens", json=card_fields(number="4242 4242 4242 4242")
        )
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["token"].startswith("tok_")
    assert {k: body[k] for k in ("brand", "last4", "exp_month")} == {
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
    }
    assert view_calls == []
    assert len(statements) == 1 and statements[0].startswith("INSERT INTO sim_acquirer_token")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]
    assert card_of(body["token"]) == {"brand": "visa", "last4": "4242", "exp_month": 12,
                                      "exp_year": utcnow().year + 2}  # fmt: skip


def test_a_wrong_field_is_the_apps_answer_in_the_readers_language(client, view_calls):
    response = client.post(
        "/sim-acquirer/v1/tokens", json=card_fields(cvc="12"), headers={"Accept-Language": "pt-BR"}
    )
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "invalid_card" and body["field"] == "cvc"
    assert body["message"] == "O CVC tem 3 dígitos."
    assert view_calls == [VIEW]


@pytest.mark.parametrize(
    "send",
    [
        lambda c: c.post("/sim-acquirer/v1/tokens", data=card_fields(return_url="/shop/")),
        lambda c: c.post("/sim-acquirer/v1/tokens", json=[card_fields()]),
        lambda c: c.post("/sim-acquirer/v1/tokens", data=b"{", content_type="application/json"),
        lambda c: c.post("/sim-acquirer/v1/tokens", json=card_fields(holder_name="Ana\u0000")),
    ],
    ids=["form with return_url", "not an object", "malformed JSON", "NUL character"],
)
def test_anything_else_goes_to_the_app(client, view_calls, send):
    response = send(client)
    assert response.status_code in (303, 400)
    if response.status_code == 303:  # the form's way back, with the token
        assert view_calls == [VIEW] and "card_token=tok_" in response.headers["Location"]
    else:  # refused by the app's guards or its view, with a JSON reason
        assert response.get_json()["error"] in ("invalid_json", "invalid_request", "bad_request")


def test_a_database_error_leaves_the_card_to_the_app(client, view_calls, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from app.sim_acquirer import fast

    def away(*_args: object) -> None:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(fast, "store_token", away)
    response = client.post("/sim-acquirer/v1/tokens", json=card_fields())
    assert response.status_code == 201 and response.get_json()["token"].startswith("tok_")
    assert view_calls == [VIEW]  # answered by the app, not raised out of the WSGI layer
