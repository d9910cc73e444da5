"""Webhooks for partners' own systems (issue 19, point 5) against a real HTTP server and
PostgreSQL: each cause writes its deliveries in its own transaction (a rollback writes none),
only to its partner's subscribed endpoints; they arrive signed with the endpoint's secret and a
fresh timestamp, one endpoint's in the order written, retried after a failed answer with a
growing pause; a sender killed between its claim and the request, or after the answer and
before recording it, leaves each delivered at least once (a repeat has the same id)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import current_app
from sqlalchemy import select, update

from app.extensions import db
from app.models import (
    Conflict,
    DeliveryStatus,
    NotFound,
    Order,
    Ticket,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.models.base import utcnow
from app.services import refunds
from app.services.payments import gateway
from app.services.scoping import SYSTEM
from app.services.webhooks import outbox, sender, transport
from app.tasks import celery
from tests.support.builders import PartnerActor, make_event, make_partner
from tests.support.database import database_url_for_tests
from tests.support.shop import buy, sign_up
from tests.support.webhooks import (
    Receiver,
    deliveries,
    endpoint,
    lease_runs_out,
    make_due,
    receiving,
    row,
    signature_is_valid,
)
from tests.support.worker import ROOT, Worker, needs_redis, wait_for


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as server:
        yield server


def note(partner_id: int, n: int, kind=outbox.WebhookKind.PAYOUT_PAID) -> list[int]:
    """A cause of ``kind`` written and committed, as a service would (ids of the endpoints)."""
    written = outbox.queue(db.session, kind, partner_id, cause=f"test:{n}", data={"n": n})
    db.session.commit()
    return written


# --------------------------------------------------------------------------- the causes


def test_a_paid_order_is_posted_to_its_partners_endpoint_signed_with_a_fresh_timestamp(
    client, on_sale, receiver
):
    hook = endpoint(on_sale.partner, receiver.url(), ["order.paid"])
    order = buy(client, on_sale)
    [delivery] = deliveries()
    assert (delivery.endpoint_id, delivery.kind) == (hook.id, "order.paid")
    assert delivery.status == DeliveryStatus.PENDING
    assert sender.send_due(db.session).delivered == [delivery.id]
    [got] = receiver.wait_for(1)
    assert got.headers["Content-Type"] == "application/json"
    assert got.kind == "order.paid" and got.delivery_id == delivery.id
    assert signature_is_valid(got, hook.secret)
    assert not signature_is_valid(got, "whsec_another")
    timestamp = int(got.headers["Bilheteria-Signature"].split(",")[0].removeprefix("t="))
    assert abs(timestamp - got.at) < 5
    document = got.document
    assert (document["id"], document["type"]) == (delivery.id, "order.paid")
    assert document["created_at"].endswith("Z")
    assert document["data"] == {
        "order_id": order["id"],
        "event_id": on_sale.id,
        "payment_id": order["payments"][0]["id"],
        "amount_cents": 20000,
        "currency": "BRL",
        "paid_at": document["data"]["paid_at"],
        "ticket_ids": sorted(t["id"] for t in order["tickets"]),
    }
    paid_at = dt.datetime.strptime(document["data"]["paid_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert paid_at == db.session.get(Order, order["id"]).paid_at
    delivery = row(delivery.id)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 1, 200)
    assert delivery.response_body == "ok" and delivery.delivered_at is not None
    # Delivered is delivered: another sweep sends nothing.
    assert sender.send_due(db.session).delivered == []
    assert len(receiver.received) == 1


def test_only_the_owning_partners_active_endpoints_subscribed_to_the_kind_get_it(
    client, on_sale, receiver
):
    mine = endpoint(on_sale.partner, receiver.url("/mine"), ["order.paid", "payout.paid"])
    endpoint(on_sale.partner, receiver.url("/refunds-only"), ["order.refunded"])
    asleep = endpoint(on_sale.partner, receiver.url("/inactive"), ["order.paid"])
    asleep.active = False
    other = make_partner("Other")
    endpoint(other, receiver.url("/other"), ["order.paid"])
    order = buy(client, on_sale)
    [delivery] = deliveries()
    assert (delivery.endpoint_id, delivery.partner_id) == (mine.id, on_sale.partner_id)
    sender.send_due(db.session)
    assert [r.path for r in receiver.received] == ["/mine"]
    assert receiver.received[0].document["data"]["order_id"] == order["id"]


def test_a_cause_written_twice_is_delivered_once_per_endpoint(receiver):
    partner = make_partner("P")
    endpoint(partner, receiver.url("/one"))
    endpoint(partner, receiver.url("/two"))
    assert len(note(partner.id, 1)) == 2
    assert note(partner.id, 1) == []  # the same cause: nothing more
    assert len(deliveries()) == 2


def test_a_rolled_back_cause_writes_no_delivery_and_sends_nothing(receiver):
    partner = make_partner("P")
    endpoint(partner, receiver.url())
    outbox.queue(db.session, outbox.WebhookKind.PAYOUT_PAID, partner.id, cause="x", data={})
    db.session.rollback()
    assert deliveries() == []
    assert sender.send_due(db.session).delivered == []
    assert receiver.received == []


def test_a_sale_that_lost_its_hold_writes_no_order_paid(client, on_sale, receiver):
    """The deliveries are a step of the sale's one statement: a sale refused is refused whole."""
    from tests.support.shop import card_token, expire, pay

    endpoint(on_sale.partner, receiver.url(), ["order.paid"])
    headers = sign_up(client, "late@example.com")
    held = client.post(
        "/api/v1/holds/",
        json={"event_id": on_sale.id, "section_id": on_sale.sections[0].id, "quantity": 1},
        headers=headers,
    ).get_json()["result"]
    expire(held["id"])
    db.session.commit()
    assert pay(client, headers, held["id"], card_token(client)).status_code == 409
    assert deliveries() == []


def test_refunds_and_cancellations_tell_refunded_then_cancelled(client, app, receiver):
    partner = make_partner("P")
    event = make_event(partner, rows=("A", "C"), seats=10, refund_window_hours=48)
    event.publish()
    db.session.commit()
    hook = endpoint(partner, receiver.url(), ["order.refunded", "order.cancelled"])
    by_partner = buy(client, event)
    by_customer = buy(client, event, buyer=(buyer := sign_up(client, "bia@example.com")))
    one_ticket = by_partner["tickets"][0]["id"]
    refunds.refund_tickets(db.session, gateway(), by_partner["id"], [one_ticket],
                           PartnerActor(partner))  # fmt: skip
    assert (
        client.post(f"/api/v1/orders/{by_customer['id']}/cancel", headers=buyer).status_code == 200
    )
    sender.send_due(db.session)
    got = receiver.wait_for(3)
    assert [(r.kind, r.document["data"]["order_id"]) for r in got] == [
        ("order.refunded", by_partner["id"]),
        ("order.refunded", by_customer["id"]),
        ("order.cancelled", by_customer["id"]),
    ]
    partial = got[0].document["data"]
    assert (partial["ticket_ids"], partial["order_status"], partial["by"]) == (
        [one_ticket], "paid", "partner",
    )  # fmt: skip
    assert partial["amount_cents"] == 10000 and partial["refunded_at"].endswith("Z")
    cancelled = got[2].document["data"]
    assert (cancelled["reason"], cancelled["order_status"]) == ("customer", "refunded")
    assert cancelled["refund_id"] == got[1].document["data"]["refund_id"]
    assert all(signature_is_valid(r, hook.secret) for r in got)


def test_an_event_cancelled_cancels_each_order_for_its_endpoints(client, app, receiver):
    partner = make_partner("P")
    event = make_event(partner, rows=("A", "C"), seats=10)
    event.publish()
    db.session.commit()
    endpoint(partner, receiver.url(), ["order.cancelled"])
    orders = [buy(client, event)["id"] for _ in range(2)]
    event.cancel("the band split up")
    db.session.commit()
    refunds.refund_event_orders(db.session, gateway(), event.id)
    sender.send_due(db.session)
    got = receiver.wait_for(2)
    assert [
        (r.kind, r.document["data"]["order_id"], r.document["data"]["reason"]) for r in got
    ] == [("order.cancelled", order_id, "event_cancelled") for order_id in orders]


@pytest.mark.usefixtures("acquirer_fees")
def test_a_payout_marked_paid_is_posted_to_its_partners_endpoints(client, on_sale, receiver):
    from app.models import PartnerUser
    from app.services import payouts
    from tests.support.builders import make_user
    from tests.support.money import create_payouts, happened_days_ago, reconcile

    endpoint(on_sale.partner, receiver.url(), ["payout.paid"])
    buy(client, on_sale)
    reconcile(happened_days_ago(2))
    [payout_id] = create_payouts()
    make_user("fiona", "Finance")
    fiona = db.session.scalars(select(PartnerUser).filter_by(username="fiona")).one()
    payouts.approve_payout(db.session, payout_id, fiona, utcnow())
    assert deliveries() == []  # approved is not paid
    payouts.mark_payout_paid(db.session, payout_id, "TED 42", fiona, utcnow())
    sender.send_due(db.session)
    [got] = receiver.wait_for(1)
    data = got.document["data"]
    assert got.kind == "payout.paid"
    assert (data["payout_id"], data["currency"], data["bank_reference"]) == (payout_id, "BRL",
                                                                             "TED 42")  # fmt: skip
    assert data["amount_cents"] == 17800 and data["paid_at"].endswith("Z")


def test_a_first_admission_at_the_gate_is_posted_once_by_the_databases_trigger(client, receiver):
    from tests.support.gate import device, open_event, result, scan

    partner = make_partner("Gatekeepers")
    event = open_event(partner)
    hook = endpoint(partner, receiver.url(), ["ticket.checked_in"])
    order = buy(client, event, quantity=2)
    auth = device(partner, event)
    first, second = order["tickets"]
    assert result(scan(client, auth, first["code"], gate="North"))["result"] == "valid"
    assert result(scan(client, auth, first["code"], gate="South"))["result"] == "already_used"
    assert result(scan(client, auth, second["code"], gate="South"))["result"] == "valid"
    written = deliveries()
    assert [(d.kind, d.payload["ticket_id"], d.payload["gate"]) for d in written] == [
        ("ticket.checked_in", first["id"], "North"),
        ("ticket.checked_in", second["id"], "South"),
    ]
    sender.send_due(db.session)
    got = receiver.wait_for(2)
    assert [r.document["data"]["ticket_id"] for r in got] == [first["id"], second["id"]]
    assert got[0].document["data"]["order_id"] == order["id"]
    assert got[0].document["data"]["checked_in_at"].endswith("Z")
    assert all(signature_is_valid(r, hook.secret) for r in got)


def test_a_transferred_ticket_is_posted_by_the_function_the_transfer_calls(client, on_sale,
                                                                           receiver):  # fmt: skip
    endpoint(on_sale.partner, receiver.url(), ["ticket.transferred"])
    order = buy(client, on_sale, quantity=1)
    ticket = db.session.get(Ticket, order["tickets"][0]["id"])
    at = utcnow()
    outbox.queue_ticket_transferred(db.session, ticket, transfer="7", at=at)
    outbox.queue_ticket_transferred(db.session, ticket, transfer="7", at=at)  # the same: once
    db.session.commit()
    sender.send_due(db.session)
    [got] = receiver.wait_for(1)
    assert got.kind == "ticket.transferred"
    assert got.document["data"] == {
        "ticket_id": ticket.id,
        "previous_ticket_id": None,
        "order_id": order["id"],
        "event_id": on_sale.id,
        "transferred_at": outbox.iso(at),
    }


# --------------------------------------------------------------------------- order


def test_one_endpoints_deliveries_arrive_in_the_order_written_a_retry_holding_back_the_rest(
    receiver,
):
    partner = make_partner("P")
    slow = endpoint(partner, receiver.url("/ordered"))
    other = endpoint(make_partner("Q"), receiver.url("/other"))
    for n in range(5):
        note(partner.id, n)
    note(other.partner_id, 100)
    ids = [d.id for d in deliveries(WebhookDelivery.endpoint_id == slow.id)]
    receiver.plan(200, path="/ordered")
    receiver.plan(500, "busy, try later", path="/ordered")  # the second one's first attempt
    outcome = sender.send_due(db.session)
    # The first went; the second waits for its retry and the three behind it wait for it; the
    # other endpoint's delivery was not held up by any of that.
    assert sorted(outcome.delivered) == sorted([ids[0], *(d.id for d in deliveries(
        WebhookDelivery.endpoint_id == other.id))])  # fmt: skip
    assert outcome.retried == [ids[1]]
    assert [r.delivery_id for r in receiver.to("/ordered")] == ids[:2]
    assert [row(i).status for i in ids[2:]] == ["pending"] * 3
    assert sender.send_due(db.session).delivered == []  # still waiting: nothing jumps the line
    assert sender.send_endpoint(db.session, slow.id).delivered == []
    make_due(ids[1])
    assert sender.send_endpoint(db.session, slow.id).delivered == ids[1:]
    assert [r.delivery_id for r in receiver.to("/ordered")] == [ids[0], ids[1], *ids[1:]]
    assert [r.document["data"]["n"] for r in receiver.unique("/ordered")] == [0, 1, 2, 3, 4]


def test_a_500_is_retried_with_a_growing_pause_and_its_answer_shown(receiver):
    partner = make_partner("P")
    endpoint(partner, receiver.url())
    note(partner.id, 1)
    [delivery] = deliveries()
    receiver.plan(500, "Internal error: " + "x" * 600)
    before = utcnow()
    assert sender.send_due(db.session).retried == [delivery.id]
    delivery = row(delivery.id)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("pending", 1, 500)
    assert (
        delivery.response_body.startswith("Internal error: x")
        and len(delivery.response_body) == 500
    )
    assert delivery.last_error == "HTTP 500" and delivery.claim_token is None
    assert dt.timedelta(seconds=29) <= delivery.next_attempt_at - before <= dt.timedelta(seconds=32)
    assert sender.send_due(db.session).retried == []  # not due yet
    make_due(delivery.id)
    receiver.plan(503)
    before = utcnow()
    assert sender.send_due(db.session).retried == [delivery.id]
    delivery = row(delivery.id)
    assert dt.timedelta(seconds=59) <= delivery.next_attempt_at - before <= dt.timedelta(seconds=62)
    make_due(delivery.id)
    assert sender.send_due(db.session).delivered == [delivery.id]
    delivery = row(delivery.id)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 3, 200)
    assert delivery.last_error is None
    # The same body every time, signed afresh each time.
    bodies = {r.body for r in receiver.received}
    assert len(receiver.received) == 3 and len(bodies) == 1
    assert len({r.headers["Bilheteria-Signature"] for r in receiver.received}) >= 1


def test_backoff_doubles_from_30_seconds_up_to_an_hour():
    assert [sender.backoff(n).total_seconds() for n in range(1, 11)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600,
    ]  # fmt: skip


def test_after_its_last_attempt_a_delivery_fails_and_the_next_one_goes(receiver):
    partner = make_partner("P")
    endpoint(partner, receiver.url())
    note(partner.id, 1)
    note(partner.id, 2)
    first, second = (d.id for d in deliveries())
    for attempt in range(1, WebhookDelivery.MAX_ATTEMPTS + 1):
        receiver.plan(500)
        make_due(first)
        outcome = sender.send_due(db.session)
        assert (outcome.retried if attempt < WebhookDelivery.MAX_ATTEMPTS else outcome.failed) == [
            first
        ]
    # Given up: the one behind it goes (in the same run, after the failure).
    assert row(first).status == "failed" and row(first).attempts == WebhookDelivery.MAX_ATTEMPTS
    assert row(second).status == "delivered"
    assert [r.delivery_id for r in receiver.received][-1] == second


def test_a_delivery_older_than_a_day_is_given_up_after_one_failed_attempt(receiver):
    partner = make_partner("P")
    endpoint(partner, receiver.url())
    note(partner.id, 1)
    [delivery] = deliveries()
    db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery.id)
        .values(created_at=utcnow() - WebhookDelivery.MAX_AGE)
    )
    db.session.commit()
    receiver.plan(502)
    assert sender.send_due(db.session).failed == [delivery.id]


def test_a_redirect_is_not_followed_and_counts_as_a_failed_attempt(receiver):
    partner = make_partner("P")
    endpoint(partner, receiver.url("/old"))
    note(partner.id, 1)
    [delivery] = deliveries()
    receiver.plan(302, "", {"Location": receiver.url("/new")})
    assert sender.send_due(db.session).retried == [delivery.id]
    assert [r.path for r in receiver.received] == ["/old"]
    assert (row(delivery.id).response_status, row(delivery.id).last_error) == (302, "HTTP 302")


def test_an_endpoint_that_does_not_answer_in_time_or_is_down_is_retried(receiver, monkeypatch):
    partner = make_partner("P")
    hook = endpoint(partner, receiver.url())
    note(partner.id, 1)
    [delivery] = deliveries()
    monkeypatch.setattr(sender, "TIMEOUT_SECONDS", 0.3)
    receiver.delay = 1.0
    assert sender.send_due(db.session).retried == [delivery.id]
    assert row(delivery.id).last_error == "no answer within 0.3 s"
    assert row(delivery.id).response_status is None
    receiver.delay = 0
    hook = db.session.get(WebhookEndpoint, hook.id)
    hook.url = "http://127.0.0.1:9/nobody"  # the discard port: nothing listens
    db.session.commit()
    make_due(delivery.id)
    assert sender.send_due(db.session).retried == [delivery.id]
    assert "ConnectionRefusedError" in row(delivery.id).last_error


def test_an_inactive_endpoints_deliveries_wait_until_it_is_active_again(receiver):
    partner = make_partner("P")
    hook = endpoint(partner, receiver.url())
    note(partner.id, 1)
    hook = db.session.get(WebhookEndpoint, hook.id)
    hook.active = False
    db.session.commit()
    assert note(partner.id, 2) == []  # nothing new for it
    assert sender.send_due(db.session).delivered == []
    hook.active = True
    db.session.commit()
    [delivery] = deliveries()
    assert sender.send_due(db.session).delivered == [delivery.id]


def test_an_outcome_is_written_only_by_the_claim_that_holds_the_delivery(receiver):
    partner = make_partner("P")
    endpoint(partner, receiver.url())
    note(partner.id, 1)
    [stale] = sender.claim(db.session, 10)
    lease_runs_out(stale.id)
    [fresh] = sender.claim(db.session, 10)
    assert fresh.id == stale.id and fresh.token != stale.token
    # The stale sender does not send it (its lease ran out) nor records anything.
    assert sender._deliver(db.session, [stale]).delivered == []
    assert receiver.received == []
    delivery = row(stale.id)
    assert (delivery.status, delivery.claim_token, delivery.attempts) == ("sending", fresh.token, 2)


def test_send_again_puts_a_delivered_or_failed_one_back_with_the_same_id(receiver):
    partner = make_partner("P")
    endpoint(partner, receiver.url())
    note(partner.id, 1)
    note(partner.id, 2)
    first, second = (d.id for d in deliveries())
    sender.send_due(db.session)
    receiver.wait_for(2)
    with pytest.raises(NotFound):
        sender.resend(db.session, first, PartnerActor(make_partner("Other")))
    sender.resend(db.session, first, PartnerActor(partner))
    delivery = row(first)
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    with pytest.raises(Conflict):
        sender.resend(db.session, first, SYSTEM)  # pending already
    assert sender.send_due(db.session).delivered == [first]
    assert [r.delivery_id for r in receiver.received] == [first, second, first]
    assert len(receiver.unique()) == 2  # a receiver that dropped repeats processed it once


# --------------------------------------------------------------------------- crashes


def run_sender(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_tests(),
        "FAB_UPDATE_PERMS": "false",
        "LOG_JSON": "false",
    }
    return subprocess.run(
        [sys.executable, "-m", "tests.support.webhook_sender_runner", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def outcome_of(run: subprocess.CompletedProcess[str]) -> dict[str, list[int]]:
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_sender_killed_between_its_claim_and_the_request_leaves_it_delivered_after_the_lease(
    receiver,
):
    partner = make_partner("P")
    hook = endpoint(partner, receiver.url())
    note(partner.id, 1)
    note(partner.id, 2)
    first, second = (d.id for d in deliveries())
    killed = run_sender("--die-after-claim", "--endpoint", str(hook.id))
    assert killed.returncode == -9, killed.stderr[-2000:]
    delivery = row(first)
    assert (delivery.status, delivery.attempts) == ("sending", 1)
    assert delivery.claimed_until > utcnow()
    # While the dead sender's lease runs, nobody takes it, nor the one behind it.
    assert outcome_of(run_sender())["delivered"] == []
    assert receiver.received == []
    lease_runs_out(first)
    assert outcome_of(run_sender())["delivered"] == [first, second]
    assert [r.delivery_id for r in receiver.received] == [first, second]
    assert (row(first).status, row(first).attempts) == ("delivered", 2)


def test_a_sender_killed_after_the_answer_sends_it_again_with_the_same_id(receiver):
    """At least once: the endpoint got it, the row never said so; after the lease it is sent
    again, as the same delivery, and a receiver that drops repeats by id processes it once."""
    partner = make_partner("P")
    hook = endpoint(partner, receiver.url())
    note(partner.id, 1)
    note(partner.id, 2)
    first, second = (d.id for d in deliveries())
    killed = run_sender("--die-after-post")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert [r.delivery_id for r in receiver.received] == [first]
    assert row(first).status == "sending" and row(second).status == "pending"
    lease_runs_out(first)
    assert outcome_of(run_sender("--endpoint", str(hook.id)))["delivered"] == [first, second]
    got = receiver.received
    assert [r.delivery_id for r in got] == [first, first, second]
    assert got[0].body == got[1].body  # the same delivery, signed again
    assert all(signature_is_valid(r, hook.secret) for r in got)
    assert [r.document["data"]["n"] for r in receiver.unique()] == [1, 2]


@pytest.mark.concurrency
def test_two_senders_at_once_deliver_each_once_and_each_endpoints_in_order(app, receiver):
    partners = [make_partner(f"P{n}") for n in range(3)]
    hooks = [endpoint(p, receiver.url(f"/p{n}")) for n, p in enumerate(partners)]
    for partner in partners:  # each endpoint's in a row: two claims would split them
        for n in range(15):
            note(partner.id, n)
    receiver.delay = 0.01  # requests overlap
    start = threading.Barrier(2)
    outcomes: list[sender.Outcome] = []
    errors: list[BaseException] = []

    def sweep() -> None:
        with app.app_context():
            try:
                start.wait()
                outcomes.append(sender.send_due(db.session, batch=2))
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    delivered = [i for outcome in outcomes for i in outcome.delivered]
    assert sorted(delivered) == [d.id for d in deliveries()]
    assert all(outcome.delivered for outcome in outcomes), [o.delivered for o in outcomes]
    assert len(receiver.received) == 45  # none twice
    for n, hook in enumerate(hooks):
        got = [r.document["data"]["n"] for r in receiver.to(f"/p{n}")]
        assert got == list(range(15)), (hook.id, got)


# --------------------------------------------------------------------------- tasks


def test_the_tasks_never_raise_the_row_carries_the_retry(receiver, monkeypatch):
    partner = make_partner("P")
    hook = endpoint(partner, receiver.url())
    note(partner.id, 1)
    receiver.plan(500)
    assert celery.tasks["webhooks.send"].apply(args=(hook.id,)).get() == {
        "delivered": 0, "retried": 1, "failed": 0,
    }  # fmt: skip
    [delivery] = deliveries()
    make_due(delivery.id)

    def broken(*_args, **_kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(sender, "send_endpoint", broken)
    monkeypatch.setattr(sender, "send_due", broken)
    assert celery.tasks["webhooks.send"].apply(args=(hook.id,)).get() == {"error": 1}
    assert celery.tasks["webhooks.send_due"].apply().get() == {"error": 1}
    monkeypatch.undo()
    assert celery.tasks["webhooks.send_due"].apply().get() == {
        "delivered": 1, "retried": 0, "failed": 0,
    }  # fmt: skip


def test_a_commit_that_wrote_deliveries_sends_each_endpoints_task_after_it(monkeypatch):
    """With a broker, one task per endpoint after the commit (none after a rollback); run
    in-process (the demo) none: the beat's sweep sends them, not the request."""
    sent: list[int] = []
    monkeypatch.setattr(celery.tasks["webhooks.send"], "delay", lambda i: sent.append(i))
    saved = celery.conf.task_always_eager
    celery.conf.task_always_eager = False
    try:
        partner = make_partner("P")
        one = endpoint(partner, "http://127.0.0.1:9/one")
        two = endpoint(partner, "http://127.0.0.1:9/two")
        outbox.queue(db.session, outbox.WebhookKind.PAYOUT_PAID, partner.id, cause="1", data={})
        assert sent == []
        db.session.commit()
        assert sent == [one.id, two.id]
        outbox.queue(db.session, outbox.WebhookKind.PAYOUT_PAID, partner.id, cause="2", data={})
        db.session.rollback()
        assert sent == [one.id, two.id]
        celery.conf.task_always_eager = True
        outbox.queue(db.session, outbox.WebhookKind.PAYOUT_PAID, partner.id, cause="3", data={})
        db.session.commit()
        assert sent == [one.id, two.id]
    finally:
        celery.conf.task_always_eager = saved
    assert [d.key for d in deliveries()] == [
        "payout.paid:1", "payout.paid:1", "payout.paid:3", "payout.paid:3",
    ]  # fmt: skip


def test_no_task_is_sent_for_a_delivery_waiting_behind_an_older_ones_retry(
    client, on_sale, monkeypatch
):
    """During an endpoint's outage each sale would send a task that finds its delivery waiting
    behind the first one's retry: none is sent; the sweep sends them in order once it is due."""
    sent: list[int] = []
    monkeypatch.setattr(
        outbox, "enqueue", lambda _session, _name, endpoint_id: sent.append(endpoint_id)
    )
    saved = celery.conf.task_always_eager
    celery.conf.task_always_eager = False
    try:
        hook = endpoint(on_sale.partner, "http://127.0.0.1:9/down", ["order.paid", "payout.paid"])
        other = endpoint(make_partner("Q"), "http://127.0.0.1:9/other", ["payout.paid"])
        first = buy(client, on_sale)
        assert sent == [hook.id]  # nothing before it: its task
        # Its attempt failed: it waits for its retry.
        [waiting] = deliveries()
        db.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == waiting.id)
            .values(attempts=1, next_attempt_at=utcnow() + dt.timedelta(minutes=1))
        )
        db.session.commit()
        second = buy(client, on_sale)
        outbox.queue(
            db.session, outbox.WebhookKind.PAYOUT_PAID, on_sale.partner.id, cause="p", data={}
        )
        outbox.queue(
            db.session, outbox.WebhookKind.PAYOUT_PAID, other.partner_id, cause="q", data={}
        )
        db.session.commit()
        assert sent == [hook.id, other.id]  # the sale and the payout behind the retry: none
    finally:
        celery.conf.task_always_eager = saved
    written = deliveries(WebhookDelivery.endpoint_id == hook.id)
    assert [d.payload.get("order_id") for d in written] == [first["id"], second["id"], None]
    # Once the first is due again, a task sends all three in order (the sweep's way too).
    make_due(waiting.id)
    assert len(sender.send_endpoint(db.session, hook.id).retried) == 1  # still down: one try


@needs_redis
def test_a_purchase_reaches_the_partners_system_through_a_real_worker_without_a_sweep(
    client, on_sale, receiver, broker, tmp_path, monkeypatch
):
    """The task sent after the sale's commit, run by a real Celery worker process, delivers
    the order.paid at once; the next one goes the same way, after it."""
    _, queue = broker
    task = celery.tasks["webhooks.send"]
    monkeypatch.setattr(task, "queue", queue, raising=False)
    monkeypatch.setattr(task, "_exec_options", None)  # Celery's copy of the task's options
    hook = endpoint(on_sale.partner, receiver.url(), ["order.paid"])
    worker = Worker(queue, "solo", tmp_path / "worker.log")
    try:
        worker.wait_until_ready()
        first = buy(client, on_sale)
        second = buy(client, on_sale)
        got = receiver.wait_for(2, timeout=30)
        wait_for(
            lambda: [d.status for d in deliveries()] == ["delivered"] * 2,
            15,
            "the deliveries recorded",
            worker,
        )
    finally:
        worker.stop()
    assert [r.document["data"]["order_id"] for r in got] == [first["id"], second["id"]]
    assert all(signature_is_valid(r, hook.secret) for r in got)


def test_the_sweep_runs_every_ten_seconds_in_the_beat_schedule():
    schedule = {entry["task"]: entry["schedule"] for entry in celery.conf.beat_schedule.values()}
    assert schedule["webhooks.send_due"] == 10.0


# --------------------------------------------------------------------------- hostile endpoints


@contextlib.contextmanager
def dripping(interval: float, seconds: float) -> Iterator[int]:
    """A server (its port) that reads the request, then answers its status line and headers a
    byte every ``interval`` seconds for ``seconds`` in all, then a complete 200: each read is
    quick, the answer takes ``seconds``."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                slow = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * int(seconds / interval)
                try:
                    for byte in slow:
                        if stop.is_set():
                            return
                        conn.sendall(bytes([byte]))
                        time.sleep(interval)
                    conn.sendall(b"\r\nContent-Length: 2\r\n\r\nok")
                except OSError:
                    pass  # the sender hung up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        server.close()
        thread.join(10)


def test_an_endpoint_that_drips_its_answer_is_cut_off_at_the_deadline_and_retried(monkeypatch):
    """A socket timeout bounds each read: an answer dripped a byte at a time never trips it. The
    whole POST has a deadline, and the attempt is a failure retried after the backoff."""
    monkeypatch.setattr(sender, "TIMEOUT_SECONDS", 1.0)  # each byte comes well within it
    monkeypatch.setattr(sender, "DEADLINE_SECONDS", 1.5)
    partner = make_partner("P")
    with dripping(interval=0.1, seconds=8) as port:
        endpoint(partner, f"http://127.0.0.1:{port}/hooks")
        note(partner.id, 1)
        [delivery] = deliveries()
        started = time.monotonic()
        outcome = sender.send_due(db.session)
        took = time.monotonic() - started
    assert took < 4, f"the attempt took {took:.1f} s"
    assert outcome.retried == [delivery.id]
    kept = row(delivery.id)
    assert kept.status == DeliveryStatus.PENDING and kept.next_attempt_at > utcnow()
    assert kept.last_error == "no complete answer within 1.5 s"
    assert kept.response_status is None


def test_a_task_or_a_sweep_stops_claiming_after_its_time_and_leaves_the_rest(receiver, monkeypatch):
    """Each answer within the deadline, but slow: a run goes on only RUN_SECONDS, the next
    sweep sends the rest (in order)."""
    monkeypatch.setattr(sender, "RUN_SECONDS", 1.0, raising=False)
    receiver.delay = 0.4
    partner = make_partner("P")
    hook = endpoint(partner, receiver.url())
    for n in range(8):
        note(partner.id, n)
    started = time.monotonic()
    first = sender.send_endpoint(db.session, hook.id)
    assert time.monotonic() - started < 2.5
    assert 1 <= len(first.delivered) <= 4
    swept = sender.send_due(db.session)
    assert 1 <= len(swept.delivered) <= 4
    receiver.delay = 0
    sender.send_due(db.session)
    assert [r.delivery_id for r in receiver.received] == [d.id for d in deliveries()]


def test_the_answers_body_is_read_only_up_to_its_excerpt(receiver):
    partner = make_partner("P")
    endpoint(partner, receiver.url())
    note(partner.id, 1)
    [delivery] = deliveries()
    receiver.plan(200, "x" * 100_000)
    assert sender.send_due(db.session).delivered == [delivery.id]
    assert row(delivery.id).response_body == "x" * transport.RESPONSE_EXCERPT


class Rebinding:
    """A DNS server made to answer ``first`` to the first question about ``name`` and a private
    address after that (DNS rebinding); any other name is resolved for real."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, first: str) -> None:
        self.name, self.first, self.asked = name, first, 0
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != name:
                return real(host, port, *args, **kwargs)
            self.asked += 1
            address = self.first if self.asked == 1 else "10.255.255.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    """APP_ENV production, with 127.0.0.1 (the test's receiver) taken as an internet address."""
    monkeypatch.setitem(current_app.config, "APP_ENV", "production")
    monkeypatch.setattr(transport, "is_public_address", lambda address: address == "127.0.0.1")


def unchecked_endpoint(partner_id: int, url: str) -> WebhookEndpoint:
    """An endpoint written as is (an address the form would refuse today, written before)."""
    hook = WebhookEndpoint(partner_id=partner_id, url=url, kinds=[outbox.WebhookKind.PAYOUT_PAID])
    db.session.add(hook)
    db.session.commit()
    return hook


def test_the_connection_goes_to_the_address_checked_not_to_a_second_resolution(
    receiver, monkeypatch
):
    in_production(monkeypatch)
    monkeypatch.setattr(sender, "TIMEOUT_SECONDS", 0.5)
    dns = Rebinding(monkeypatch, "partner.example", first="127.0.0.1")
    partner = make_partner("P")
    unchecked_endpoint(partner.id, f"http://partner.example:{receiver.port}/hooks")
    note(partner.id, 1)
    [delivery] = deliveries()
    assert sender.send_due(db.session).delivered == [delivery.id]
    assert dns.asked == 1  # resolved once: the address checked is the one connected to
    [received] = receiver.received
    assert received.headers["Host"] == f"partner.example:{receiver.port}"


def test_a_host_resolving_to_a_private_address_is_refused_for_good(receiver, monkeypatch):
    in_production(monkeypatch)
    Rebinding(monkeypatch, "partner.example", first="192.168.0.7")
    partner = make_partner("P")
    unchecked_endpoint(partner.id, f"http://partner.example:{receiver.port}/hooks")
    note(partner.id, 1)
    [delivery] = deliveries()
    assert sender.send_due(db.session).failed == [delivery.id]
    assert row(delivery.id).last_error == (
        "partner.example resolves to an address not on the internet (192.168.0.7)"
    )
    assert receiver.received == []


def test_an_address_with_characters_other_than_ascii_fails_at_once_not_ten_times(receiver):
    partner = make_partner("P")
    unchecked_endpoint(partner.id, receiver.url("/ganhos/café"))
    note(partner.id, 1)
    [delivery] = deliveries()
    assert sender.send_due(db.session).failed == [delivery.id]
    assert row(delivery.id).attempts == 1
    assert row(delivery.id).last_error == (
        "the address has characters other than ASCII: it cannot be sent"
    )
    assert receiver.received == []


def test_the_last_error_is_shown_in_the_readers_language(app):
    from flask_babel import force_locale

    with app.test_request_context(), force_locale("pt_BR"):
        shown = transport.error_text("no complete answer within 15 s")
        assert shown != "no complete answer within 15 s" and "15" in shown
        assert transport.error_text(transport.STALLED) != transport.STALLED
        assert transport.error_text("HTTP 502") == "HTTP 502"
    with app.test_request_context(), force_locale("en"):
        assert transport.error_text("no complete answer within 15 s") == (
            "no complete answer within 15 s"
        )
