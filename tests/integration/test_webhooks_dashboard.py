"""Webhooks in the dashboard: a partner registers its endpoints (https://, the kinds it wants),
sees the signing secret, rotates it (the old one signs a day more), deactivates an endpoint,
reads its deliveries with the endpoint's answers and sends one again; another partner's
endpoints and deliveries are 404 everywhere, bulk actions included; admins see every
partner's."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, WebhookDelivery, WebhookEndpoint
from app.services.webhooks import outbox, sender
from tests.support.builders import login
from tests.support.webhooks import (
    Receiver,
    deliveries,
    endpoint,
    receiving,
    row,
    signature_is_valid,
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as server:
        yield server


def page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def paid(partner_id: int, n: int) -> None:
    outbox.queue(db.session, outbox.WebhookKind.PAYOUT_PAID, partner_id, cause=f"t:{n}", data={})
    db.session.commit()


def test_a_partner_registers_an_endpoint_and_sees_its_secret(client, two_partners, receiver):
    login(client, "alice")
    response = client.post(
        "/webhookendpointview/add",
        data={
            "url": receiver.url(),
            "description": "Our CRM",
            "kinds": ["payout.paid", "order.paid"],
        },
        follow_redirects=True,
    )
    assert response.status_code == 200
    hook = db.session.scalars(select(WebhookEndpoint)).one()
    assert hook.partner_id == two_partners["a"].id
    assert hook.kinds == ["order.paid", "payout.paid"] and hook.active
    assert hook.secret.startswith("whsec_") and len(hook.secret) > 40
    assert hook.secret in page(response)  # the endpoint's page, right after saving
    listing = page(client.get("/webhookendpointview/list/"))
    assert receiver.url() in listing and "order.paid, payout.paid" in listing
    # It works: a payout paid reaches it, signed with that secret.
    paid(two_partners["a"].id, 1)
    sender.send_due(db.session)
    [got] = receiver.wait_for(1)
    assert signature_is_valid(got, hook.secret)


@pytest.mark.parametrize(
    ("url", "kinds", "error"),
    [
        ("http://crm.example.com/hooks", ["order.paid"], "Give an https:// address"),
        ("ftp://crm.example.com/hooks", ["order.paid"], "Give an https:// address"),
        ("https://user:pw@crm.example.com/", ["order.paid"], "No user or password"),
        ("https://crm.example.com/hooks", [], "Tick at least one kind of event"),
    ],
)
def test_an_endpoint_needs_an_https_address_and_a_kind(client, two_partners, url, kinds, error):
    login(client, "alice")
    response = client.post("/webhookendpointview/add", data={"url": url, "kinds": kinds})
    assert error in page(response)
    assert db.session.scalars(select(WebhookEndpoint)).first() is None


def test_a_partner_changes_the_kinds_deactivates_and_rotates_the_secret(
    client, two_partners, receiver
):
    hook = endpoint(two_partners["a"], receiver.url(), ["order.paid"])
    old_secret = hook.secret
    login(client, "alice")
    client.post(
        f"/webhookendpointview/edit/{hook.id}",
        data={"url": receiver.url(), "kinds": ["payout.paid"], "active": "y"},
    )
    db.session.expire_all()
    assert db.session.get(WebhookEndpoint, hook.id).kinds == ["payout.paid"]
    rotated = client.post(
        f"/webhookendpointview/action/rotate_secret/{hook.id}", follow_redirects=True
    )
    db.session.expire_all()
    hook = db.session.get(WebhookEndpoint, hook.id)
    assert hook.secret != old_secret and hook.secret in page(rotated)
    assert hook.previous_secret == old_secret and hook.previous_secret_until is not None
    # For a day both sign: a receiver with either secret accepts the delivery.
    paid(two_partners["a"].id, 1)
    sender.send_due(db.session)
    [got] = receiver.wait_for(1)
    assert got.headers["Bilheteria-Signature"].count("v1=") == 2
    assert signature_is_valid(got, hook.secret) and signature_is_valid(got, old_secret)
    # Deactivated (the box unticked): nothing new is written for it.
    client.post(
        f"/webhookendpointview/edit/{hook.id}",
        data={"url": receiver.url(), "kinds": ["payout.paid"]},
    )
    db.session.expire_all()
    assert db.session.get(WebhookEndpoint, hook.id).active is False
    paid(two_partners["a"].id, 2)
    assert len(deliveries()) == 1
    # The audit log says who changed where the partner's data goes, never a secret.
    entries = db.session.scalars(
        select(AuditEntry)
        .where(AuditEntry.object_type == "webhook_endpoint")
        .order_by(AuditEntry.id)
    ).all()[1:]  # after its creation (by the test, as the system)
    assert [(e.actor_name, e.partner_id) for e in entries] == [("alice", hook.partner_id)] * 3
    assert entries[0].changes["kinds"] == [["order.paid"], ["payout.paid"]]
    assert entries[1].changes["secret"] == ["[redacted]", "[redacted]"]
    assert entries[2].changes["active"] == [True, False]
    logged = json.dumps([e.changes for e in entries])
    assert old_secret not in logged and hook.secret not in logged


def test_a_second_rotation_within_the_day_is_refused_with_a_message_and_both_secrets_kept(
    client, two_partners
):
    hook = endpoint(two_partners["a"], "https://crm.example.com/hooks", ["order.paid"])
    first = hook.secret
    login(client, "alice")
    client.post(f"/webhookendpointview/action/rotate_secret/{hook.id}")
    db.session.expire_all()
    second = db.session.get(WebhookEndpoint, hook.id).secret
    again = client.post(
        f"/webhookendpointview/action/rotate_secret/{hook.id}", follow_redirects=True
    )
    assert "less than a day ago" in page(again) or "menos de um dia" in page(again)
    db.session.expire_all()
    hook = db.session.get(WebhookEndpoint, hook.id)
    assert (hook.secret, hook.previous_secret) == (second, first)


def test_a_partner_sees_its_deliveries_with_the_answer_and_sends_one_again(
    client, two_partners, receiver
):
    endpoint(two_partners["a"], receiver.url())
    paid(two_partners["a"].id, 1)
    [delivery] = deliveries()
    for _ in range(WebhookDelivery.MAX_ATTEMPTS):
        receiver.plan(500, "<b>database down</b>")
        db.session.execute(
            WebhookDelivery.__table__.update().values(next_attempt_at=delivery.created_at)
        )
        db.session.commit()
        sender.send_due(db.session)
    assert row(delivery.id).status == "failed"
    login(client, "alice")
    listing = page(client.get("/webhookdeliveryview/list/"))
    assert "payout.paid" in listing and "failed" in listing and "500" in listing
    shown = client.get(f"/webhookdeliveryview/show/{delivery.id}").get_data(as_text=True)
    assert "&lt;b&gt;database down&lt;/b&gt;" in shown  # the answer, escaped
    assert "HTTP 500" in shown
    client.post("/webhookdeliveryview/action_post", data={"action": "resend",
                                                          "rowid": [delivery.id]})  # fmt: skip
    assert (row(delivery.id).status, row(delivery.id).attempts) == ("pending", 0)
    assert sender.send_due(db.session).delivered == [delivery.id]


def test_another_partners_endpoints_and_deliveries_are_404_bulk_actions_included(
    client, two_partners, receiver
):
    theirs = endpoint(two_partners["a"], receiver.url())
    paid(two_partners["a"].id, 1)
    [delivery] = deliveries()
    sender.send_due(db.session)
    secret = theirs.secret
    login(client, "bob")
    assert receiver.url() not in page(client.get("/webhookendpointview/list/"))
    assert client.get(f"/webhookendpointview/show/{theirs.id}").status_code == 404
    assert client.get(f"/webhookendpointview/edit/{theirs.id}").status_code == 404
    assert client.post(f"/webhookendpointview/action/rotate_secret/{theirs.id}").status_code == 404
    bulk = client.post(
        "/webhookendpointview/action_post", data={"action": "rotate_secret", "rowid": [theirs.id]}
    )
    assert bulk.status_code == 404
    assert client.get(f"/webhookdeliveryview/show/{delivery.id}").status_code == 404
    assert f">{delivery.id}<" not in page(client.get("/webhookdeliveryview/list/"))
    assert client.post(f"/webhookdeliveryview/action/resend/{delivery.id}").status_code == 404
    resend = client.post(
        "/webhookdeliveryview/action_post", data={"action": "resend", "rowid": [delivery.id]}
    )
    assert resend.status_code == 404
    db.session.expire_all()
    assert db.session.get(WebhookEndpoint, theirs.id).secret == secret
    assert row(delivery.id).status == "delivered"
    # Nor can bob register an endpoint for partner A by naming it.
    client.post(
        "/webhookendpointview/add",
        data={"url": "https://spy.example.com/", "kinds": ["order.paid"],
              "partner": str(two_partners["a"].id)},
    )  # fmt: skip
    spy = db.session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.url == "https://spy.example.com/")
    ).one()
    assert spy.partner_id == two_partners["b"].id


def test_an_admin_sees_every_partners_endpoints_and_deliveries(client, two_partners, receiver):
    a = endpoint(two_partners["a"], receiver.url("/a"))
    b = endpoint(two_partners["b"], receiver.url("/b"))
    paid(two_partners["a"].id, 1)
    paid(two_partners["b"].id, 1)
    login(client, "root")
    listing = page(client.get("/webhookendpointview/list/"))
    assert receiver.url("/a") in listing and receiver.url("/b") in listing
    ids = re.findall(r'name="rowid" value="(\d+)"', page(client.get("/webhookdeliveryview/list/")))
    assert sorted(map(int, ids)) == [d.id for d in deliveries()]
    assert client.get(f"/webhookendpointview/show/{b.id}").status_code == 200
    assert a.id != b.id


def test_gate_staff_have_no_webhooks(client, two_partners):
    login(client, "gina")
    assert client.get("/webhookendpointview/list/").status_code in (302, 403)
    assert client.get("/webhookdeliveryview/list/").status_code in (302, 403)
