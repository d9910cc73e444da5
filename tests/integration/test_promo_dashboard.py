"""Promo codes in the partner dashboard and REST API: a partner creates its codes (typed as
people type amounts), sees their uses, generates a batch of single-use codes answered as CSV and
exports it again; another partner's codes are not found anywhere (404), bulk actions included;
the shop's event page takes a code, shows the discounted prices and holds with it."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import EventSpot, PromoCode, SpotStatus
from tests.support.builders import api_token, login, make_event, make_partner, make_user
from tests.support.pages import text
from tests.support.shop import sign_up


@pytest.fixture
def partners():
    aurora, outra = make_partner("Aurora"), make_partner("Outra")
    event = make_event(aurora, "Show")
    event.publish()
    theirs = make_event(outra, "Deles")
    db.session.commit()
    make_user("alice", "Partner", aurora)
    make_user("bob", "Partner", outra)
    foreign = PromoCode(partner_id=outra.id, event=theirs, code="THEIRS", kind="percent",
                        value=10, batch="THEIRS")  # fmt: skip
    db.session.add(foreign)
    db.session.commit()
    return {"event": event, "aurora": aurora, "foreign": foreign}


def _rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200, text(response)[:500]
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_a_partner_creates_a_code_for_its_event_and_sees_its_uses(client, partners):
    event = partners["event"]
    login(client, "alice")
    added = client.post(
        "/promocodeview/add",
        data={"code": "fans25", "event": event.id, "kind": "amount_off", "value_amount": "25,00",
              "max_uses": "10", "active": "y"},
    )  # fmt: skip
    assert added.status_code == 302, text(added)[:3000]
    code = db.session.scalars(select(PromoCode).where(PromoCode.code == "FANS25")).one()
    assert (code.partner_id, code.kind, code.value, code.max_uses) == (
        partners["aurora"].id, "amount_off", 2500, 10,
    )  # fmt: skip
    again = client.post(
        "/promocodeview/add",
        data={"code": "FANS25", "kind": "percent", "value_amount": "10", "active": "y"},
    )
    assert again.status_code == 200 and "already have a code FANS25" in text(again)
    client.get("/logout/")
    headers = sign_up(client, "buyer@example.com")
    held = client.post(
        "/api/v1/holds/",
        json={"event_id": event.id, "section_id": event.sections[0].id, "quantity": 2,
              "promo_code": "fans25"},
        headers=headers,
    )  # fmt: skip
    assert held.status_code == 201, held.get_json()
    login(client, "alice")
    assert "2 / 10" in text(client.get("/promocodeview/list/"))


def test_a_batch_of_single_use_codes_is_generated_and_exported_as_csv(client, partners):
    event = partners["event"]
    template = PromoCode(partner_id=partners["aurora"].id, event=event, code="VIP",
                         kind="fixed_price", value=5000)  # fmt: skip
    db.session.add(template)
    db.session.commit()
    login(client, "alice")
    made = _rows(client.post(f"/promocodeview/batch/{template.id}",
                             data={"prefix": "vip", "count": "25"}))  # fmt: skip
    assert len(made) == 25 and len({row["code"] for row in made}) == 25
    assert all(row["code"].startswith("VIP-") and row["event"] == "Show" for row in made)
    stored = db.session.scalars(select(PromoCode).where(PromoCode.batch == "VIP")).all()
    assert {(c.max_uses, c.max_uses_per_customer, c.value, c.event_id) for c in stored} == {
        (1, 1, 5000, event.id)
    }
    again = _rows(client.get("/promocodeview/batch.csv/vip"))
    assert sorted(row["code"] for row in again) == sorted(row["code"] for row in made)
    picked = [c.id for c in stored[:3]]
    exported = _rows(client.post("/promocodeview/action_post",
                                 data={"action": "export_codes", "rowid": picked}))  # fmt: skip
    assert len(exported) == 3


def test_another_partners_codes_are_not_found_anywhere(client, partners):
    foreign = partners["foreign"]
    login(client, "alice")
    assert "THEIRS" not in text(client.get("/promocodeview/list/"))
    assert client.get(f"/promocodeview/show/{foreign.id}").status_code == 404
    assert client.get(f"/promocodeview/edit/{foreign.id}").status_code == 404
    assert client.get(f"/promocodeview/batch/{foreign.id}").status_code == 404
    assert client.post(f"/promocodeview/batch/{foreign.id}",
                       data={"prefix": "X", "count": "2"}).status_code == 404  # fmt: skip
    assert client.get("/promocodeview/batch.csv/THEIRS").status_code == 404
    own = PromoCode(partner_id=partners["aurora"].id, code="MINE", kind="percent", value=5)
    db.session.add(own)
    db.session.commit()
    for action in ("export_codes", "delete"):
        bulk = client.post("/promocodeview/action_post",
                           data={"action": action, "rowid": [own.id, foreign.id]})  # fmt: skip
        assert bulk.status_code == 404, action
    assert "THEIRS" not in client.get("/promocodeview/export.csv").get_data(as_text=True)
    assert db.session.get(PromoCode, foreign.id) is not None
    headers = api_token(client, "alice")
    assert client.get(f"/api/v1/promo-codes/{foreign.id}", headers=headers).status_code == 404
    assert client.put(f"/api/v1/promo-codes/{foreign.id}", json={"value": 50},
                      headers=headers).status_code == 404  # fmt: skip
    listed = client.get("/api/v1/promo-codes/", headers=headers).get_json()["result"]
    assert [row["code"] for row in listed] == ["MINE"]
    # A code of its own cannot point at another partner's event either.
    theirs_event = foreign.event_id
    made = client.post("/api/v1/promo-codes/",
                       json={"code": "SNEAKY", "kind": "percent", "value": 10,
                             "event": theirs_event}, headers=headers)  # fmt: skip
    assert made.status_code == 404 and made.get_json()["field"] == "event"


def test_the_api_creates_a_code_for_the_partner(client, partners):
    headers = api_token(client, "alice")
    body = {"code": "api10", "kind": "percent", "value": 10, "event": partners["event"].id,
            "max_uses": 3}  # fmt: skip
    made = client.post("/api/v1/promo-codes/", json=body, headers=headers)
    assert made.status_code == 201, made.get_json()
    code = db.session.get(PromoCode, made.get_json()["id"])
    assert (code.code, code.partner_id) == ("API10", partners["aurora"].id)
    free = client.post("/api/v1/promo-codes/", json={"code": "ALLFREE", "kind": "percent",
                       "value": 100}, headers=headers)  # fmt: skip
    assert free.status_code == 422 and free.get_json()["field"] == "value"


def test_an_admin_sees_every_partners_codes(client, partners):
    make_user("root", "Admin")
    login(client, "root")
    assert "THEIRS" in text(client.get("/promocodeview/list/"))


def test_the_event_page_takes_a_code_shows_the_discount_and_holds_with_it(client, partners):
    event = partners["event"]
    db.session.add(PromoCode(partner_id=partners["aurora"].id, event=event, code="FANS20",
                             kind="percent", value=20))  # fmt: skip
    db.session.commit()
    sign_up(client, "ana@example.com")
    login(client, "ana@example.com", "Ingresso-Azul-77")
    page = text(client.get(f"/events/{event.id}?code=fans20"))
    assert "R$80.00" in page and 'name="promo_code" value="FANS20"' in page
    unknown = text(client.get(f"/events/{event.id}?code=NOPE", follow_redirects=True))
    assert "Promo code not found." in unknown
    held = client.post(
        f"/events/{event.id}/hold",
        data={"section_id": event.sections[0].id, "quantity": "2", "promo_code": "FANS20"},
    )
    assert held.status_code == 302
    spots = db.session.scalars(select(EventSpot).where(EventSpot.status == SpotStatus.HELD)).all()
    assert sorted((s.held_price_cents, s.held_discount_cents) for s in spots) == [(8000, 2000)] * 2
    hold_page = text(client.get(held.headers["Location"]))
    assert "R$200.00" in hold_page and "R$40.00" in hold_page and "R$160.00" in hold_page
    assert 'name="expected_total_cents" value="16000"' in hold_page


def test_a_code_held_or_bought_with_stays_and_an_unused_one_is_deleted(client, partners):
    event = partners["event"]
    aurora = partners["aurora"].id
    used = PromoCode(partner_id=aurora, event=event, code="USED", kind="percent", value=10)
    unused = PromoCode(partner_id=aurora, event=event, code="UNUSED", kind="percent", value=10)
    db.session.add_all([used, unused])
    db.session.commit()
    used_id, unused_id = used.id, unused.id
    headers = sign_up(client, "buyer@example.com")
    held = client.post(
        "/api/v1/holds/",
        json={"event_id": event.id, "section_id": event.sections[0].id, "quantity": 1,
              "promo_code": "USED"},
        headers=headers,
    )  # fmt: skip
    assert held.status_code == 201
    login(client, "alice")
    refused = client.post(f"/promocodeview/delete/{used_id}", follow_redirects=True)
    assert "This code was used" in text(refused)
    client.post(f"/promocodeview/delete/{unused_id}")
    db.session.expire_all()
    assert db.session.get(PromoCode, used_id) is not None
    assert db.session.get(PromoCode, unused_id) is None
