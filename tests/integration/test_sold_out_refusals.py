"""A section with no free spot is refused cheaply: without locking the customer (nothing to
flush to disk), then, within a second, from the process's memory without the database."""

from __future__ import annotations

import pytest
from flask import current_app
from sqlalchemy import text

from app.extensions import db
from app.services import customers, purchase
from app.services.purchase import sold_out
from tests.support.builders import make_event, make_partner
from tests.support.clock import Clock
from tests.support.database import statements_during
from tests.support.shop import sign_up


@pytest.fixture
def one_seat() -> dict[str, int]:
    """Ids of an event on sale with one seat (read once: a request expires the test's objects)."""
    event = make_event(make_partner("Aurora"), rows=("A", "A"), seats=1)
    event.publish()
    db.session.commit()
    section = event.sections[0]
    return {"event_id": event.id, "section_id": section.id, "spot_id": section.spots[0].id}


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(sold_out, "_clock", clock)
    return clock


def best(client, headers, seat):
    body = {"event_id": seat["event_id"], "section_id": seat["section_id"], "quantity": 1}
    return client.post("/api/v1/holds/", json=body, headers=headers)


def sign_up_customer(email: str) -> int:
    return customers.sign_up(
        db.session, current_app.appbuilder.sm, "Ana Souza", email, "Ingresso-Azul-77"
    ).id


def test_refusing_a_sold_out_section_takes_no_lock_and_so_no_transaction_id(one_seat):
    ana, bia = (sign_up_customer(f"{n}@example.com") for n in ("ana", "bia"))
    event, section = one_seat["event_id"], one_seat["section_id"]
    purchase.hold.reserve_spots(db.session, ana, event, section_id=section, quantity=1)
    with pytest.raises(purchase.hold.SpotsUnavailable):
        purchase.hold.reserve_spots(db.session, bia, event, section_id=section, quantity=1)
    # Still in the refused request's transaction: a row lock would have given it an id.
    assert db.session.scalar(text("SELECT pg_current_xact_id_if_assigned()")) is None


def test_a_sold_out_section_refuses_the_next_buyers_without_the_database(client, one_seat, clock):
    ana = sign_up(client, "ana@example.com")
    bia = sign_up(client, "bia@example.com")
    cid = sign_up(client, "cid@example.com")
    assert best(client, ana, one_seat).status_code == 201
    first = best(client, bia, one_seat)
    second, statements = statements_during(lambda: best(client, cid, one_seat))
    assert first.status_code == second.status_code == 409
    assert second.get_json() == first.get_json()
    assert second.get_json()["error"] == "spots_unavailable"
    assert statements == []


def test_a_spot_freed_is_offered_again_once_the_second_has_passed(client, one_seat, clock):
    ana = sign_up(client, "ana@example.com")
    bia = sign_up(client, "bia@example.com")
    hold = best(client, ana, one_seat).get_json()["result"]
    assert best(client, bia, one_seat).status_code == 409
    assert client.delete(f"/api/v1/holds/{hold['id']}", headers=ana).status_code == 200
    assert best(client, bia, one_seat).status_code == 409  # remembered: as if asked a moment ago
    clock.now += sold_out.SOLD_OUT_MEMORY_SECONDS
    assert best(client, bia, one_seat).status_code == 201


def test_a_token_that_does_not_verify_is_refused_as_the_app_refuses_it_even_when_sold_out(
    client, one_seat, clock
):
    ana = sign_up(client, "ana@example.com")
    bia = sign_up(client, "bia@example.com")
    assert best(client, ana, one_seat).status_code == 201
    assert best(client, bia, one_seat).status_code == 409
    forged = {"Authorization": bia["Authorization"][:-4] + "AAAA"}
    refused = client.get("/api/v1/orders/", headers=forged).status_code
    assert refused in (401, 422)
    assert best(client, forged, one_seat).status_code == refused


def test_chosen_spots_in_a_sold_out_section_are_answered_by_name(client, one_seat, clock):
    ana = sign_up(client, "ana@example.com")
    bia = sign_up(client, "bia@example.com")
    assert best(client, ana, one_seat).status_code == 201
    assert best(client, bia, one_seat).status_code == 409
    body = {"event_id": one_seat["event_id"], "spot_ids": [one_seat["spot_id"]]}
    answer = client.post("/api/v1/holds/", json=body, headers=bia)
    assert answer.status_code == 409
    assert [spot["id"] for spot in answer.get_json()["spots"]] == [one_seat["spot_id"]]


def test_the_refusal_from_memory_speaks_the_buyers_language(client, one_seat, clock):
    """Answered before Flask, it reads the request's Accept-Language as the app would."""
    ana, bia, cid = (sign_up(client, f"{n}@example.com") for n in ("ana", "bia", "cid"))
    assert best(client, ana, one_seat).status_code == 201
    assert best(client, bia, one_seat).status_code == 409  # now remembered sold out
    pt_br = best(client, cid | {"Accept-Language": "pt-BR"}, one_seat)
    english = best(client, cid, one_seat)  # the suite's client asks for English
    assert pt_br.status_code == english.status_code == 409
    assert pt_br.get_json()["message"].startswith("Não restam lugares suficientes")
    assert english.get_json()["message"].startswith("Not enough spots left")
    assert pt_br.get_json()["error"] == english.get_json()["error"] == "spots_unavailable"


def test_a_hold_with_a_promo_code_takes_the_apps_path_even_when_remembered_sold_out(
    client, one_seat, clock
):
    """The code is the app's to judge (unknown, used up, unlocking a presale's section)."""
    ana, bia = sign_up(client, "ana@example.com"), sign_up(client, "bia@example.com")
    assert best(client, ana, one_seat).status_code == 201
    assert best(client, bia, one_seat).status_code == 409  # now remembered sold out
    body = {"event_id": one_seat["event_id"], "section_id": one_seat["section_id"],
            "quantity": 1, "promo_code": "NOPE"}  # fmt: skip
    answer, statements = statements_during(
        lambda: client.post("/api/v1/holds/", json=body, headers=bia)
    )
    assert answer.status_code == 404 and answer.get_json()["field"] == "promo_code"
    assert statements != []


def test_a_keyed_hold_in_a_sold_out_section_is_refused_after_one_probe_of_its_key(
    client, one_seat, clock
):
    """A client that sends an Idempotency-Key on every hold (a mobile app, bench/onsale.py)
    is refused from memory too: one read that the key took nothing still held, then the
    app's answer, without the user's load or the customer's lock."""
    ana, bia, cid = (sign_up(client, f"{n}@example.com") for n in ("ana", "bia", "cid"))
    assert best(client, ana, one_seat).status_code == 201
    first = best(client, bia | {"Idempotency-Key": "bia-attempt-01"}, one_seat)
    assert first.status_code == 409  # the app's answer: now remembered sold out
    keyed = cid | {"Idempotency-Key": "cid-attempt-01"}
    second, statements = statements_during(lambda: best(client, keyed, one_seat))
    assert second.status_code == 409
    assert second.get_json() == first.get_json()
    assert len(statements) == 1 and "held_request_key" in statements[0]
    # A key the app refuses is the app's to answer, sold out or not.
    short = best(client, cid | {"Idempotency-Key": "abc"}, one_seat)
    assert short.status_code == 400 and short.get_json()["field"] == "Idempotency-Key"


def test_a_keyed_hold_goes_to_the_app_when_its_probe_fails(client, one_seat, clock, monkeypatch):
    """The database away for the probe: the app answers (a 503 then), never a bare 500."""
    from sqlalchemy.exc import OperationalError

    from app.views import holds_fast

    ana, bia, cid = (sign_up(client, f"{n}@example.com") for n in ("ana", "bia", "cid"))
    assert best(client, ana, one_seat).status_code == 201
    assert best(client, bia, one_seat).status_code == 409  # now remembered sold out

    def away(*_args: object) -> None:
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(holds_fast.SoldOutFastPath, "_asked_again", away)
    keyed = cid | {"Idempotency-Key": "cid-attempt-01"}
    answer, statements = statements_during(lambda: best(client, keyed, one_seat))
    assert answer.status_code == 409 and answer.get_json()["error"] == "spots_unavailable"
    assert statements != []  # the app's own path
