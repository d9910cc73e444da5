"""The purchase path under the awkward cases: a second checkout while the first is charging,
the event stopping sales meanwhile, a processor that fails, holds that must not live forever,
and bad input that must never be a 500."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from sqlalchemy import func, select, text

from app.extensions import db
from app.models import Event, Hold, Order, OrderStatus, Payment, PaymentStatus
from app.models.base import utcnow
from app.services import payments, purchase
from tests.support.builders import api_token, login, make_event, make_partner, make_user
from tests.support.shop import card_token, hold_seats, pay, sign_up


def _sim_charges() -> int:
    return db.session.scalar(text("SELECT count(*) FROM sim_acquirer_charge"))


def test_a_second_checkout_while_the_first_is_charging_is_refused(client, on_sale, monkeypatch):
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale)
    real_charge = payments.SimulatedGateway.charge
    second = {}

    def charge_while_another_tab_pays(self, token, amount, currency, key):
        if not second:
            second["response"] = pay(client, headers, hold["id"], card_token(client))
        return real_charge(self, token, amount, currency, key)

    monkeypatch.setattr(payments.SimulatedGateway, "charge", charge_while_another_tab_pays)
    first = pay(client, headers, hold["id"], card_token(client))
    assert first.status_code == 201
    assert second["response"].status_code == 409
    assert second["response"].get_json()["error"] == "checkout_in_progress"
    order = db.session.scalars(select(Order)).one()
    assert order.status == OrderStatus.PAID
    assert [p.status for p in order.payments] == [PaymentStatus.CAPTURED]
    assert _sim_charges() == 1


def test_no_payment_once_the_event_stopped_selling(client, on_sale):
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale)
    event = db.session.get(Event, on_sale.id)
    event.cancel("Storm")
    db.session.commit()
    response = pay(client, headers, hold["id"], card_token(client))
    assert response.status_code == 409
    assert "cancelled" in response.get_json()["message"]
    assert _sim_charges() == 0


def test_an_event_cancelled_during_the_charge_refunds_it(client, on_sale, monkeypatch):
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale)
    real_charge = payments.SimulatedGateway.charge

    def charge_while_the_partner_cancels(self, token, amount, currency, key):
        event = db.session.get(Event, on_sale.id)
        event.cancel("Storm")
        db.session.commit()
        return real_charge(self, token, amount, currency, key)

    monkeypatch.setattr(payments.SimulatedGateway, "charge", charge_while_the_partner_cancels)
    response = pay(client, headers, hold["id"], card_token(client))
    assert response.status_code == 409 and response.get_json()["refunded"] is True
    payment = db.session.scalars(select(Payment)).one()
    assert payment.status == PaymentStatus.REFUNDED


def test_a_processor_failure_leaves_the_payment_to_be_finished_once(client, on_sale, monkeypatch):
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale)
    real_charge = payments.SimulatedGateway.charge
    calls = []

    def charge_after_a_timeout(self, token, amount, currency, key):
        calls.append(key)
        result = real_charge(self, token, amount, currency, key)
        if len(calls) == 1:
            raise TimeoutError("the processor charged, but its answer was lost")
        return result

    monkeypatch.setattr(payments.SimulatedGateway, "charge", charge_after_a_timeout)
    token, key = card_token(client), uuid.uuid4().hex
    lost = pay(client, headers, hold["id"], token, key)
    assert lost.status_code == 409 and lost.get_json()["error"] == "checkout_in_progress"
    assert db.session.scalars(select(Payment)).one().status == PaymentStatus.PENDING
    monkeypatch.setattr(purchase.checkout, "IN_FLIGHT_WAIT_SECONDS", 0.2)
    retried = pay(client, headers, hold["id"], token, key)
    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json()["result"]["status"] == "paid"
    assert _sim_charges() == 1  # the retry's charge got the first charge's outcome


def test_the_reconcile_task_finishes_stale_payments_and_retries_refunds(
    app, client, on_sale, monkeypatch
):
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale)
    monkeypatch.setattr(
        payments.SimulatedGateway,
        "charge",
        lambda *a, **k: (_ for _ in ()).throw(TimeoutError("no answer")),
    )
    assert pay(client, headers, hold["id"], card_token(client)).status_code == 409
    monkeypatch.undo()
    payment = db.session.scalars(select(Payment)).one()
    payment.created_at = utcnow() - dt.timedelta(minutes=5)
    db.session.commit()
    from app.tasks import celery

    done = celery.tasks["payments.reconcile"].apply().get()
    assert done["finished"] == 1
    db.session.expire_all()
    assert db.session.scalars(select(Payment)).one().status == PaymentStatus.CAPTURED
    assert db.session.scalars(select(Order)).one().status == OrderStatus.PAID

    # A refund that failed is retried.
    order = db.session.scalars(select(Order)).one()
    order.status, order.cancel_reason = OrderStatus.CANCELLED.value, "hold_lost"
    db.session.commit()
    done = celery.tasks["payments.reconcile"].apply().get()
    assert done["refunds_retried"] == 1
    db.session.expire_all()
    assert db.session.scalars(select(Payment)).one().status == PaymentStatus.REFUNDED


def test_repeated_declines_cannot_keep_a_hold_alive(client, on_sale):
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale)
    row = db.session.get(Hold, hold["id"])
    row.created_at = utcnow() - dt.timedelta(minutes=9, seconds=50)
    row.expires_at = row.created_at + dt.timedelta(minutes=10)
    db.session.commit()
    limit = row.created_at + dt.timedelta(minutes=12)
    for _ in range(3):
        declined = pay(client, headers, hold["id"], card_token(client, "4000000000000002"))
        assert declined.status_code == 402
        assert db.session.get(Hold, hold["id"]).expires_at <= limit


@pytest.mark.concurrency
def test_parallel_holds_cannot_pass_the_per_customer_limit(app, on_sale):
    client_a, client_b = app.test_client(), app.test_client()
    headers = sign_up(client_a)
    section = on_sale.sections[0].id
    start = threading.Barrier(2)
    codes = []

    def hold_ten(client):
        start.wait(5)
        response = client.post(
            "/api/v1/holds/",
            json={"event_id": on_sale.id, "section_id": section, "quantity": 10},
            headers=headers,
        )
        codes.append(response.status_code)

    threads = [threading.Thread(target=hold_ten, args=(c,)) for c in (client_a, client_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [201, 422]


@pytest.mark.concurrency
def test_buyers_racing_for_the_same_seats_get_one_hold(app, on_sale):
    """The hold locks the spots before it reads them, so only one of the racers finds them
    free."""
    from app.services import customers as customer_service

    sm = app.appbuilder.sm
    racers = []
    for n in range(10):
        email = f"racer{n}@example.com"
        customer_service.sign_up(db.session, sm, f"Racer {n}", email, "Ingresso-Azul-77")
        client = app.test_client()
        racers.append((client, api_token(client, email, "Ingresso-Azul-77")))
    spot_ids = [s.id for s in on_sale.sections[0].spots[:2]]
    start = threading.Barrier(len(racers))
    codes = []

    def race(client, headers):
        start.wait(10)
        response = client.post(
            "/api/v1/holds/", json={"event_id": on_sale.id, "spot_ids": spot_ids}, headers=headers
        )
        codes.append(response.status_code)

    threads = [threading.Thread(target=race, args=racer) for racer in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [201] + [409] * (len(racers) - 1), codes
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Hold)) == 1


@pytest.mark.concurrency
def test_a_double_submit_with_two_keys_charges_once_and_answers_409(app, on_sale, monkeypatch):
    """The second attempt waits for the first one's lock on the hold, then must see the order
    the first one created (not insert a second one and fail with a 500)."""
    client_a, client_b = app.test_client(), app.test_client()
    headers = sign_up(client_a)
    hold = hold_seats(client_a, headers, on_sale)
    tokens = [card_token(client_a), card_token(client_a)]
    first_inside = threading.Event()
    real_fee = purchase.checkout.platform_fee_cents

    def slow_first_fee(*args):
        if not first_inside.is_set():
            first_inside.set()  # the first attempt holds the hold's lock, its order inserted
            threading.Event().wait(0.5)
        return real_fee(*args)

    monkeypatch.setattr(purchase.checkout, "platform_fee_cents", slow_first_fee)
    codes = {}

    def attempt(name, client, token):
        codes[name] = pay(client, headers, hold["id"], token).status_code

    first = threading.Thread(target=attempt, args=("first", client_a, tokens[0]))
    first.start()
    assert first_inside.wait(5)
    second = threading.Thread(target=attempt, args=("second", client_b, tokens[1]))
    second.start()
    first.join()
    second.join()
    assert codes == {"first": 201, "second": 409}
    assert _sim_charges() == 1
    assert db.session.scalar(select(func.count()).select_from(Order)) == 1


@pytest.mark.concurrency
def test_a_double_submit_with_one_key_answers_the_same_order_twice(app, on_sale, monkeypatch):
    """The key is looked up only when the attempt cannot be recorded: the second submit waits
    for the first one's lock on the hold, finds the first attempt's payment under its key and
    answers that order (200), charging nothing more."""
    client_a, client_b = app.test_client(), app.test_client()
    headers = sign_up(client_a)
    hold = hold_seats(client_a, headers, on_sale)
    token, key = card_token(client_a), uuid.uuid4().hex
    first_inside = threading.Event()
    real_fee = purchase.checkout.platform_fee_cents

    def slow_first_fee(*args):
        if not first_inside.is_set():
            first_inside.set()  # the first attempt holds the hold's lock
            threading.Event().wait(0.5)
        return real_fee(*args)

    monkeypatch.setattr(purchase.checkout, "platform_fee_cents", slow_first_fee)
    answers = {}

    def attempt(name, client):
        response = pay(client, headers, hold["id"], token, key)
        answers[name] = (response.status_code, response.get_json()["result"]["id"])

    first = threading.Thread(target=attempt, args=("first", client_a))
    first.start()
    assert first_inside.wait(5)
    second = threading.Thread(target=attempt, args=("second", client_b))
    second.start()
    first.join()
    second.join()
    order = db.session.scalars(select(Order)).one()
    assert answers == {"first": (201, order.id), "second": (200, order.id)}
    assert order.status == OrderStatus.PAID
    assert _sim_charges() == 1


HUGE = "9" * 40  # an amount beyond any price: capped, not refused


@pytest.mark.parametrize(
    "path",
    [f"/?price_min={HUGE}", f"/api/v1/catalog/events?price_max={HUGE}",
     f"/api/v1/catalog/events?price_min={HUGE},00", "/?price_min=1e999999"],
)  # fmt: skip
def test_absurd_price_filters_are_not_errors(client, path):
    assert client.get(path).status_code == 200


def test_a_price_filter_in_exponent_notation_is_refused_at_its_field(client):
    answer = client.get("/api/v1/catalog/events?price_max=1e999999")
    assert answer.status_code == 422
    assert answer.get_json() == {
        "error": "invalid",
        "field": "price_max",
        "message": "price_max must be a number such as 100,00.",
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/events/99999999999999999999"),
     ("GET", "/api/v1/catalog/events/99999999999999999999"),
     ("GET", "/api/v1/holds/99999999999999999999"), ("GET", "/orders/99999999999999999999")],
)  # fmt: skip
def test_huge_ids_answer_4xx_not_500(client, method, path):
    sign_up(client)
    assert client.open(path, method=method).status_code in (404, 405)


def test_a_huge_id_in_a_hold_body_is_a_clear_error(client, on_sale):
    headers = sign_up(client)
    response = client.post(
        "/api/v1/holds/", json={"event_id": 2**70, "spot_ids": [2**70]}, headers=headers
    )
    assert response.status_code == 422
    assert response.get_json()["field"] in {"event_id", "spot_ids"}


def test_unknown_dashboard_actions_answer_404(client):
    partner = make_partner("P")
    make_user("alice", "Partner", partner)
    event = make_event(partner)
    login(client, "alice")
    assert client.post("/eventview/action_post", data={"action": "nope"}).status_code == 404
    assert client.post(f"/eventview/action/nope/{event.id}").status_code == 404


def test_out_of_range_numbers_in_the_partner_api_answer_422(client):
    partner = make_partner("P")
    make_user("alice", "Partner", partner)
    event = make_event(partner)
    headers = api_token(client, "alice")
    response = client.post(
        "/api/v1/sections/",
        json={"event": event.id, "name": "Huge", "kind": "seated", "price_cents": 2**31},
        headers=headers,
    )
    assert response.status_code == 422 and response.get_json()["field"] == "price_cents"


def test_sign_up_never_redirects_off_site(client):
    response = client.post(
        "/signup?next=/%5Cevil.example",
        data={"name": "Ana", "email": "ana@example.com", "password": "Ingresso-Azul-77"},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_the_acquirer_form_refuses_a_return_url_off_site(client):
    response = client.post(
        "/sim-acquirer/v1/tokens",
        data={"number": "4242424242424242", "exp_month": "12", "exp_year": "2099", "cvc": "123",
              "holder_name": "Ana", "return_url": "/\\evil.example"},
    )  # fmt: skip
    assert response.status_code == 400


def test_expired_holds_void_their_unpaid_order(client, on_sale):
    from app.services.purchase.release import release_expired_holds

    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale)
    assert (
        pay(client, headers, hold["id"], card_token(client, "4000000000000002")).status_code == 402
    )
    row = db.session.get(Hold, hold["id"])
    row.created_at = utcnow() - dt.timedelta(minutes=30)
    row.expires_at = utcnow() - dt.timedelta(minutes=1)
    db.session.commit()
    release_expired_holds(db.session)
    order = db.session.scalars(select(Order)).one()
    assert order.status == OrderStatus.CANCELLED and order.cancel_reason == "hold_expired"
    assert db.session.scalar(select(func.count()).where(Order.status == "pending")) == 0
    assert client.get("/api/v1/orders/", headers=headers).get_json()["count"] == 0


@pytest.mark.concurrency
def test_a_release_racing_a_payment_never_leaves_a_paid_order_without_its_seats(
    app, on_sale, monkeypatch
):
    """The customer releases the hold in one tab while paying in another: the release locks the
    hold and its spots first, so the payment finds the
    hold released and is refunded; the seats are free and no order is paid."""
    from app.models import EventSpot, SpotStatus

    client_a, client_b = app.test_client(), app.test_client()
    headers = sign_up(client_a)
    hold = hold_seats(client_a, headers, on_sale)
    token = card_token(client_a)
    read = threading.Event()
    real_spots = purchase.summary.spots_of_hold

    def slow_locked_read(session, hold_id, *, lock=False):
        spots = real_spots(session, hold_id, lock=lock)
        if lock and threading.current_thread().name == "release":
            read.set()
            threading.Event().wait(0.8)  # the payment comes now
        return spots

    monkeypatch.setattr(purchase.release, "spots_of_hold", slow_locked_read)
    codes = {}

    def release():
        codes["release"] = client_b.delete(f"/api/v1/holds/{hold['id']}", headers=headers)

    releasing = threading.Thread(target=release, name="release")
    releasing.start()
    assert read.wait(5)
    paid = pay(client_a, headers, hold["id"], token)
    releasing.join()
    assert codes["release"].status_code == 200
    assert paid.status_code == 409, paid.get_json()
    db.session.rollback()
    spot_ids = [s["id"] for s in hold["spots"]]
    statuses = db.session.scalars(select(EventSpot.status).where(EventSpot.id.in_(spot_ids)))
    assert set(statuses) == {SpotStatus.AVAILABLE}
    assert db.session.scalars(select(Order.status)).all() in ([], [OrderStatus.CANCELLED])
