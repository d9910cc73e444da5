"""Admin manages partners and fees; roles are data synced at deploy; each role sees its views."""

from __future__ import annotations

from decimal import Decimal

from flask import current_app

from app.extensions import db
from app.models import Event, EventStatus, Partner, PartnerStatus
from app.views.roles import ROLE_PERMISSIONS, sync_permissions
from tests.support.builders import api_token, login, make_event, make_partner, make_user


def test_admin_creates_a_partner_awaiting_approval_with_fees(client):
    make_user("root", "Admin")
    login(client, "root")
    response = client.post(
        "/partnerview/add",
        data={
            "name": "Novo Parceiro",
            "contact_email": "n@example.com",
            "fee_percent": "7,5",  # a comma, as Brazilians write it
            "fee_fixed_amount": "1,50",  # money, not cents
        },
    )
    assert response.status_code == 302
    partner = db.session.query(Partner).filter_by(name="Novo Parceiro").one()
    assert partner.status == PartnerStatus.PENDING
    assert partner.fee_percent == Decimal("7.50") and partner.fee_fixed_cents == 150


def test_a_fee_above_100_percent_is_refused_at_its_field(client):
    make_user("root", "Admin")
    login(client, "root")
    response = client.post(
        "/partnerview/add",
        data={"name": "Greedy", "fee_percent": "150", "fee_fixed_amount": "0"},
    )
    assert response.status_code == 200
    assert "between 0 and 100" in response.get_data(as_text=True)
    assert db.session.query(Partner).filter_by(name="Greedy").count() == 0


def test_approve_then_suspend_a_partner(client):
    make_user("root", "Admin")
    partner = make_partner("Pending", status=PartnerStatus.PENDING.value)
    login(client, "root")
    client.post(f"/partnerview/action/approve/{partner.id}")
    db.session.refresh(partner)
    assert partner.status == PartnerStatus.APPROVED and partner.approved_at is not None
    client.post("/partnerview/action_post", data={"action": "suspend", "rowid": [partner.id]})
    db.session.refresh(partner)
    assert partner.status == PartnerStatus.SUSPENDED


def test_a_suspended_partners_user_logs_in_but_cannot_publish_or_sell(client):
    partner = make_partner("Paused")
    make_user("paula", "Partner", partner)
    event = make_event(partner)
    event.publish()
    db.session.commit()
    partner.suspend()
    db.session.commit()
    assert not db.session.get(Event, event.id).is_on_sale(event.starts_at.replace(year=2000))
    login(client, "paula")
    assert client.get("/eventview/list/").status_code == 200
    draft = make_event(partner, "Draft")
    page = client.post(f"/eventview/action/publish/{draft.id}", follow_redirects=True)
    assert "is suspended: it cannot publish or sell" in page.get_data(as_text=True)
    db.session.refresh(draft)
    assert draft.status == EventStatus.DRAFT


def test_a_partner_awaiting_approval_cannot_publish(client):
    partner = make_partner("Newcomer", status=PartnerStatus.PENDING.value)
    make_user("nina", "Partner", partner)
    event = make_event(partner)
    login(client, "nina")
    page = client.post(f"/eventview/action/publish/{event.id}", follow_redirects=True)
    assert "awaiting approval" in page.get_data(as_text=True)


def test_admin_attaches_a_user_to_a_partner(client):
    make_user("root", "Admin")
    partner = make_partner("Attach")
    user = make_user("newbie", "Partner")
    login(client, "root")
    role_id = current_app.appbuilder.sm.find_role("Partner").id
    response = client.post(
        f"/users/edit/{user.id}",
        data={
            "first_name": "New",
            "last_name": "Bie",
            "username": "newbie",
            "email": "newbie@example.com",
            "active": "y",
            "roles": [str(role_id)],
            "partner": str(partner.id),
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    db.session.expire_all()
    assert current_app.appbuilder.sm.find_user(username="newbie").partner_id == partner.id


def test_admin_lists_customers_and_all_events_with_their_partner(client, two_partners):
    login(client, "root")
    assert client.get("/customerview/list/").status_code == 200
    page = client.get("/eventview/list/").get_data(as_text=True)
    assert "Partner A" in page and "Partner B" in page


def test_permission_sync_is_idempotent_and_matches_the_declared_roles(app):
    first = sync_permissions(current_app.appbuilder)
    second = sync_permissions(current_app.appbuilder)
    assert first == second
    assert set(ROLE_PERMISSIONS) <= set(first)
    sm = current_app.appbuilder.sm
    partner = {
        (pv.view_menu.name, pv.permission.name) for pv in sm.find_role("Partner").permissions
    }
    assert ("EventView", "can_add") in partner and ("EventView", "publish") in partner
    assert ("PartnerView", "can_list") not in partner
    finance = {
        (pv.view_menu.name, pv.permission.name) for pv in sm.find_role("Finance").permissions
    }
    assert ("EventView", "can_list") in finance and ("EventView", "can_edit") not in finance
    assert first["Admin"] == len(sm.session.query(sm.permissionview_model).all())


def test_each_role_reaches_only_its_views(client, two_partners):
    make_user("carl", "Customer")
    checks = {
        "root": {"/partnerview/list/": 200, "/eventview/list/": 200, "/users/list/": 200},
        "alice": {"/partnerview/list/": 403, "/eventview/list/": 200, "/users/list/": 403},
        "fiona": {"/partnerview/list/": 200, "/eventview/add": 403, "/eventview/list/": 200},
        "gina": {"/eventview/list/": 200, "/eventspotview/list/": 403, "/eventview/add": 403},
        "carl": {"/eventview/list/": 403, "/partnerview/list/": 403},
    }
    for username, routes in checks.items():
        client.get("/logout/")
        login(client, username)
        for route, status in routes.items():
            assert client.get(route).status_code == status, (username, route)


def test_gate_staff_read_nothing_of_the_partner_api(client, two_partners):
    """The gate page needs the check-in API only; gate staff read the partner's events, with
    their sections, through the partner REST API (found by a hostile probe)."""
    event = two_partners["event_a"]
    headers = api_token(client, "gina")
    for path in ("/api/v1/events/", f"/api/v1/events/{event.id}", "/api/v1/events/_info",
                 "/api/v1/sections/", "/api/v1/spots/"):  # fmt: skip
        assert client.get(path, headers=headers).status_code in (401, 403), path
    assert client.get("/api/v1/checkin/events", headers=headers).status_code == 200


def test_a_user_tied_to_no_partner_cannot_create_partner_rows(client):
    make_user("drifter", "Partner")
    login(client, "drifter")
    response = client.post(
        "/eventview/add",
        data={"name": "Orphan", "venue": "V", "city": "C", "starts_at": "2031-01-01 20:00:00"},
    )
    assert "belongs to no partner" in response.get_data(as_text=True)
    assert db.session.query(Event).count() == 0
