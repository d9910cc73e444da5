"""Abuse limits: past the limit, login, sign-up, hold and checkout answer 429 with Retry-After
(and a JSON body on API routes); the test configuration (RATELIMIT_ENABLED false) never does.

The limits are tried on a second app built with small limits; its limiter counts in its own
memory storage, emptied before each test.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import Customer, Hold, Payment
from tests.support.apps import another_app
from tests.support.shop import CUSTOMER_PASSWORD, buy, card_token, sign_up

LIMITS = {
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_SIGNUP": "2 per minute",
    "RATELIMIT_LOGIN": "3 per minute",
    "RATELIMIT_HOLD": "2 per minute",
    "RATELIMIT_CHECKOUT": "2 per minute",
    "RATELIMIT_QUEUE": "2 per minute",
    "RATELIMIT_TRANSFER": "2 per minute",
}


@pytest.fixture(scope="module")
def limited_app(app: Flask) -> Iterator[Flask]:
    with another_app(app, **LIMITS) as limited:
        yield limited


@pytest.fixture
def limited(limited_app: Flask) -> FlaskClient:
    """A client of the limited app whose counters start from zero."""
    limited_app.appbuilder.sm.limiter.reset()
    return limited_app.test_client()


def sign_up_json(client: FlaskClient, email: str):
    return client.post(
        "/api/v1/customers/",
        json={"name": "Ana Souza", "email": email, "password": CUSTOMER_PASSWORD},
    )


def api_login(client: FlaskClient, email: str, password: str = CUSTOMER_PASSWORD):
    return client.post(
        "/api/v1/security/login",
        json={"username": email, "password": password, "provider": "db"},
    )


def hold_one(client: FlaskClient, event, headers=None):
    return client.post(
        "/api/v1/holds/",
        json={"event_id": event.id, "section_id": event.sections[0].id, "quantity": 1},
        headers=headers or {},
    )


def checkout(client: FlaskClient, headers, hold_id: int, token: str, key: str):
    return client.post(
        f"/api/v1/holds/{hold_id}/checkout",
        json={"card_token": token},
        headers={**headers, "Idempotency-Key": key},
    )


def assert_limited(response, limit: str) -> None:
    """A 429 with a usable Retry-After and the JSON body API clients parse."""
    assert response.status_code == 429, (response.status_code, response.get_data(as_text=True))
    retry_after = response.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit(), dict(response.headers)
    assert 0 < int(retry_after) <= 60
    assert response.is_json, response.headers.get("Content-Type")
    body = response.get_json()
    assert body["status"] == 429 and limit in body["message"]


def count(model) -> int:
    db.session.rollback()  # read what the other app's requests committed
    return db.session.scalar(select(func.count()).select_from(model))


def test_the_third_sign_up_within_a_minute_answers_429_with_retry_after(limited):
    assert sign_up_json(limited, "ana@example.com").status_code == 201
    assert sign_up_json(limited, "bia@example.com").status_code == 201
    third = sign_up_json(limited, "caio@example.com")
    assert_limited(third, "2 per 1 minute")
    assert count(Customer) == 2  # the refused sign-up created nothing


def test_the_fourth_api_login_within_a_minute_answers_429_even_with_the_right_password(limited):
    assert sign_up_json(limited, "ana@example.com").status_code == 201
    for _ in range(3):  # guessing counts against the limit
        assert api_login(limited, "ana@example.com", "wrong-password").status_code == 401
    fourth = api_login(limited, "ana@example.com")
    assert_limited(fourth, "3 per 1 minute")
    assert "access_token" not in fourth.get_json()


def test_the_fourth_login_form_post_within_a_minute_answers_429(limited):
    assert sign_up_json(limited, "ana@example.com").status_code == 201
    for _ in range(3):
        wrong = limited.post("/login/", data={"username": "ana@example.com", "password": "nope"})
        assert wrong.status_code == 302  # FAB sends a failed login back to the form
    fourth = limited.post(
        "/login/", data={"username": "ana@example.com", "password": CUSTOMER_PASSWORD}
    )
    assert fourth.status_code == 429
    assert fourth.headers.get("Retry-After", "").isdigit()


def test_hold_posts_beyond_the_limit_answer_429(limited, on_sale):
    headers = sign_up(limited)
    assert hold_one(limited, on_sale, headers).status_code == 201
    assert hold_one(limited, on_sale, headers).status_code == 201
    third = hold_one(limited, on_sale, headers)
    assert_limited(third, "2 per 1 minute")
    db.session.rollback()  # read what the other app's requests committed
    # One hold (the customer's cart) with the two spots the allowed posts took.
    [hold] = db.session.scalars(select(Hold)).all()
    assert len(hold.spots) == 2


def test_checkout_posts_beyond_the_limit_answer_429(limited, on_sale):
    headers = sign_up(limited)
    hold = hold_one(limited, on_sale, headers).get_json()["result"]
    token, key = card_token(limited), uuid.uuid4().hex
    assert checkout(limited, headers, hold["id"], token, key).status_code == 201
    assert checkout(limited, headers, hold["id"], token, key).status_code == 200  # replay
    third = checkout(limited, headers, hold["id"], token, key)
    assert_limited(third, "2 per 1 minute")
    assert count(Payment) == 1


def test_the_limited_app_counts_in_its_own_storage(app, limited_app, limited):
    from limits.storage import MemoryStorage, RedisStorage

    own = limited_app.appbuilder.sm.limiter
    # Redis-backed when Redis is configured (counts shared by every process), memory otherwise.
    expected = RedisStorage if limited_app.config["REDIS_URL"] else MemoryStorage
    assert own is not app.appbuilder.sm.limiter and isinstance(own.storage, expected)
    assert app.appbuilder.sm.limiter.enabled is False  # the session app keeps no counts
    assert sign_up_json(limited, "ana@example.com").status_code == 201
    assert sign_up_json(limited, "bia@example.com").status_code == 201
    assert sign_up_json(limited, "caio@example.com").status_code == 429
    own.reset()  # empty the storage: the refusal came from its count
    assert sign_up_json(limited, "caio@example.com").status_code == 201


def test_limits_wrap_the_views_only_when_enabled(app, limited_app):
    """A disabled limiter still runs its bookkeeping in every wrapped view: load tests
    (RATELIMIT_ENABLED=false) measure the views without it."""
    import inspect

    for endpoint in ("HoldApi.post", "HoldApi.checkout", "shop.hold", "CustomerApi.sign_up"):
        bare, wrapped = app.view_functions[endpoint], limited_app.view_functions[endpoint]
        assert bare.__name__ == wrapped.__name__
        assert inspect.unwrap(wrapped) is not wrapped  # the limiter's wrapper
        assert inspect.unwrap(bare) is bare or inspect.ismethod(bare)


def test_joining_a_waiting_room_is_limited_api_and_page(limited, on_sale):
    """Each join takes a place in line: joining and leaving in a loop would push everyone
    behind back, so joins are counted per customer."""
    on_sale.waiting_room_per_minute = 60
    db.session.commit()
    headers = sign_up(limited)
    url = f"/api/v1/queue/{on_sale.id}"
    for _ in range(2):
        assert limited.post(url, headers=headers).status_code == 200
        assert limited.delete(url, headers=headers).status_code == 200
    assert_limited(limited.post(url, headers=headers), "2 per 1 minute")
    assert limited.get(url, headers=headers).status_code == 200  # asking is not joining

    page = limited.application.test_client()
    page.post(
        "/signup", data={"name": "Bia", "email": "bia@example.com", "password": CUSTOMER_PASSWORD}
    )
    for _ in range(2):
        assert page.post(f"/events/{on_sale.id}/queue").status_code == 302
    assert page.post(f"/events/{on_sale.id}/queue").status_code == 429


def test_joining_a_waiting_list_from_the_page_is_limited(limited, on_sale):
    """As the API's join: each one takes a place in a sold-out section's line."""
    page = limited.application.test_client()
    page.post(
        "/signup", data={"name": "Bia", "email": "bia@example.com", "password": CUSTOMER_PASSWORD}
    )
    url = f"/events/{on_sale.id}/waitlist"
    for _ in range(2):
        assert page.post(url, data={"quantity": "1"}).status_code == 302
    assert page.post(url, data={"quantity": "1"}).status_code == 429


def test_transfers_are_limited_so_that_they_cannot_list_accounts(limited, on_sale):
    """A transfer to an address answers whether it has an account (422 unknown_recipient):
    asking address after address is stopped."""
    headers = sign_up(limited)
    order = buy(limited, on_sale, buyer=headers)
    url = f"/api/v1/tickets/{order['tickets'][0]['id']}/transfer"
    for n in range(2):
        tried = limited.post(url, json={"email": f"someone{n}@example.com"}, headers=headers)
        assert tried.status_code == 422 and tried.get_json()["error"] == "unknown_recipient"
    assert_limited(
        limited.post(url, json={"email": "x@example.com"}, headers=headers), "2 per 1 minute"
    )


def test_the_default_test_app_never_answers_429(client, on_sale):
    assert client.application.config["RATELIMIT_ENABLED"] is False
    statuses = [sign_up_json(client, f"user{i}@example.com").status_code for i in range(3)]
    assert statuses == [201, 201, 201]
    statuses = [api_login(client, "user0@example.com", "wrong").status_code for _ in range(3)]
    statuses.append(api_login(client, "user0@example.com").status_code)
    assert statuses == [401, 401, 401, 200]
    token = api_login(client, "user0@example.com").get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    holds = [hold_one(client, on_sale, headers) for _ in range(3)]
    assert [h.status_code for h in holds] == [201, 201, 201]
    hold_id, token, key = holds[0].get_json()["result"]["id"], card_token(client), uuid.uuid4().hex
    paid = [checkout(client, headers, hold_id, token, key).status_code for _ in range(3)]
    assert paid == [201, 200, 200]


def test_hold_limits_count_per_customer_for_api_tokens(limited, on_sale):
    ana = sign_up(limited, "ana@example.com")
    bia = sign_up(limited, "bia@example.com")
    assert hold_one(limited, on_sale, ana).status_code == 201
    assert hold_one(limited, on_sale, ana).status_code == 201
    assert hold_one(limited, on_sale, bia).status_code == 201  # Bia has not held anything yet


def test_the_sign_up_page_is_limited_too(limited):
    statuses = [
        limited.post(
            "/signup",
            data={"name": "Ana", "email": f"u{i}@example.com", "password": CUSTOMER_PASSWORD},
        ).status_code
        for i in range(3)
    ]
    assert statuses == [302, 302, 429]


def test_the_hold_form_is_limited_too(limited, on_sale):
    form = {"name": "Ana", "email": "ana@example.com", "password": CUSTOMER_PASSWORD}
    assert limited.post("/signup", data=form).status_code == 302
    data = {"section_id": on_sale.sections[0].id, "quantity": 1}
    statuses = [limited.post(f"/events/{on_sale.id}/hold", data=data).status_code for _ in range(3)]
    assert statuses == [302, 302, 429]


def test_the_pay_form_is_limited_too(limited, on_sale):
    form = {"name": "Ana", "email": "ana@example.com", "password": CUSTOMER_PASSWORD}
    assert limited.post("/signup", data=form).status_code == 302
    hold = limited.post(
        f"/events/{on_sale.id}/hold", data={"section_id": on_sale.sections[0].id, "quantity": 1}
    )
    hold_path = hold.headers["Location"]
    data = {"card_token": card_token(limited), "idempotency_key": uuid.uuid4().hex}
    statuses = [limited.post(f"{hold_path}/checkout", data=data).status_code for _ in range(3)]
    assert statuses == [302, 302, 429]


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis; set REDIS_URL")
def test_a_limited_request_costs_one_redis_round_trip_and_its_headers_are_right(
    limited_app, limited, on_sale, monkeypatch
):
    """app/ratelimit.py: the increment answers the count and the expiry the headers show;
    the stock storage asked Redis twice more per request."""
    storage = limited_app.appbuilder.sm.limiter.storage
    client = storage.storage  # the redis client
    commands: list[str] = []
    execute = client.execute_command

    def counted(*args, **kwargs):
        commands.append(str(args[0]).upper())
        return execute(*args, **kwargs)

    headers = sign_up(limited)  # counted by its own limit (sign-up), before the spy
    monkeypatch.setattr(client, "execute_command", counted)
    first = hold_one(limited, on_sale, headers)
    assert first.status_code == 201
    assert commands == ["EVALSHA"]
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-RateLimit-Remaining"] == "1"
    assert 0 < int(first.headers["X-RateLimit-Reset"]) - time.time() <= 61
    commands.clear()
    assert hold_one(limited, on_sale, headers).headers["X-RateLimit-Remaining"] == "0"
    assert_limited(hold_one(limited, on_sale, headers), "2 per 1 minute")
    assert commands == ["EVALSHA", "EVALSHA"]
    # Outside a request the stock calls answer, from Redis.
    key = next(iter(storage.storage.scan_iter(storage.prefixed_key("*HoldApi*"))))
    assert storage.get(key.decode().removeprefix(storage.prefixed_key(""))) == 3


def test_limits_keep_working_in_memory_while_redis_is_down(app):
    """A rate-limit store that cannot be reached (nothing listens on port 1): sign-up still
    answers, and its limit is still kept, counted in the process's memory meanwhile."""
    from app import ratelimit

    down = ratelimit.storage_uri("redis://127.0.0.1:1/0")
    with another_app(app, **LIMITS, RATELIMIT_STORAGE_URI=down) as unreachable:
        client = unreachable.test_client()
        codes = [sign_up_json(client, f"fan{n}@example.com").status_code for n in range(3)]
        assert codes == [201, 201, 429]


WRONG = "wrong-password"  # noqa: S105 - a guess


def form_login(client: FlaskClient, username: str, password: str = WRONG, address: str = ""):
    environ = {"REMOTE_ADDR": address} if address else {}
    return client.post(
        "/login/", data={"username": username, "password": password}, environ_base=environ
    )


def api_login_from(client: FlaskClient, username: str, address: str, password: str = WRONG):
    return client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db"},
        environ_base={"REMOTE_ADDR": address},
    )


def test_the_form_and_the_api_login_draw_on_one_budget(limited):
    """Apart, each allowed the limit: alternating doubled the guesses."""
    assert sign_up_json(limited, "ana@example.com").status_code == 201
    assert api_login(limited, "ana@example.com", "wrong-password").status_code == 401
    assert form_login(limited, "ana@example.com").status_code == 302
    assert api_login(limited, "ana@example.com", "wrong-password").status_code == 401
    assert form_login(limited, "ana@example.com", CUSTOMER_PASSWORD).status_code == 429
    assert_limited(api_login(limited, "ana@example.com"), "3 per 1 minute")


def test_guesses_at_one_account_from_many_addresses_are_limited(limited):
    assert sign_up_json(limited, "ana@example.com").status_code == 201
    for n in range(3):
        guess = api_login_from(limited, "ana@example.com", f"203.0.113.{n + 1}")
        assert guess.status_code == 401
    fourth = api_login_from(limited, "ana@example.com", "203.0.113.9", CUSTOMER_PASSWORD)
    assert_limited(fourth, "3 per 1 minute")
    # The account is what is limited, not the new address: another account signs in from it.
    assert sign_up_json(limited, "bia@example.com").status_code == 201
    bia = api_login_from(limited, "bia@example.com", "203.0.113.9", CUSTOMER_PASSWORD)
    assert bia.status_code == 200


def test_a_username_and_its_email_count_as_one_account(limited):
    from tests.support.builders import make_user

    make_user("alice", "Partner")
    assert form_login(limited, "alice", address="198.51.100.1").status_code == 302
    assert form_login(limited, "ALICE@example.com", address="198.51.100.2").status_code == 302
    assert api_login_from(limited, "Alice", "198.51.100.3").status_code == 401
    assert form_login(limited, "alice@example.com", address="198.51.100.4").status_code == 429


def test_a_refused_form_login_shows_the_form_with_the_reason(limited):
    for _ in range(3):
        form_login(limited, "nobody@example.com")
    refused = form_login(limited, "nobody@example.com")
    assert refused.status_code == 429
    assert refused.headers.get("Retry-After", "").isdigit()
    page = refused.get_data(as_text=True)
    assert "Too many sign-in attempts" in page and 'name="password"' in page


def test_a_login_name_that_is_not_valid_text_is_a_400_not_a_500(limited):
    # Refused with its field before any view or limit looks at it: it cannot sign anyone in.
    body = '{"username": "al\\ud800ice", "password": "x", "provider": "db"}'
    for _ in range(4):
        answer = limited.post("/api/v1/security/login", data=body, content_type="application/json")
        assert answer.status_code == 400
        assert answer.get_json()["field"] == "username"
