"""API tokens' users are kept per process for JWT_USER_CACHE_SECONDS: a request within that time
asks the database nothing about its user, and a deactivated user is refused once it has passed."""

from __future__ import annotations

from sqlalchemy import event, select, text

from app.extensions import db
from app.models import PartnerUser
from app.views import security
from tests.support.apps import another_app
from tests.support.clock import Clock
from tests.support.shop import sign_up


def _user_queries(app, client, headers) -> tuple[int, int]:
    """(status of GET /api/v1/orders/, how many statements read ab_user meanwhile)."""
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args):
        if "ab_user" in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        status = client.get("/api/v1/orders/", headers=headers).status_code
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    return status, len(seen)


def test_a_token_user_is_read_once_then_kept_until_the_delay_passes(app, client, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(security.time, "monotonic", clock)
    headers = sign_up(client)
    assert _user_queries(app, client, headers) == (200, 1)
    assert _user_queries(app, client, headers) == (200, 0)
    clock.now += app.config["JWT_USER_CACHE_SECONDS"] + 1
    assert _user_queries(app, client, headers) == (200, 1)


def test_a_deactivated_user_is_refused_once_the_delay_has_passed(app, client, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(security.time, "monotonic", clock)
    headers = sign_up(client, email="leaving@example.com")
    assert client.get("/api/v1/orders/", headers=headers).status_code == 200
    with app.app_context():
        user = db.session.scalars(
            select(PartnerUser).where(PartnerUser.email == "leaving@example.com")
        ).one()
        user.active = False
        db.session.commit()
    clock.now += app.config["JWT_USER_CACHE_SECONDS"] + 1
    assert client.get("/api/v1/orders/", headers=headers).status_code == 401


def test_another_token_of_another_user_never_gets_a_cached_user(app, client, monkeypatch):
    monkeypatch.setattr(security.time, "monotonic", Clock())
    cache = app.appbuilder.sm.jwt_users
    cache.clear()
    ana = sign_up(client, email="ana@example.com")
    bia = sign_up(client, email="bia@example.com", name="Bia")
    assert client.get("/api/v1/orders/", headers=ana).status_code == 200
    assert client.get("/api/v1/orders/", headers=bia).status_code == 200
    users = {user.email for _, user in cache._users.values()}
    assert users == {"ana@example.com", "bia@example.com"}


def test_a_user_in_a_group_is_served_from_the_cache(app, client, monkeypatch):
    """FAB reads the roles of a user's groups: the cached user has them loaded."""
    from flask_appbuilder.security.sqla.models import Group

    monkeypatch.setattr(security.time, "monotonic", Clock())
    headers = sign_up(client, email="grouped@example.com")
    with app.app_context():
        sm = app.appbuilder.sm
        group = Group(name="vip", label="VIP", roles=[sm.find_role("Customer")])
        db.session.add(group)
        db.session.commit()
        user = sm.find_user(username="grouped@example.com")
        db.session.execute(
            text("INSERT INTO ab_user_group (user_id, group_id) VALUES (:u, :g)"),
            {"u": user.id, "g": group.id},
        )
        db.session.commit()
        group_id = group.id
    try:
        for _ in range(2):  # loaded, then from the cache
            assert client.get("/api/v1/orders/", headers=headers).status_code == 200
    finally:
        with app.app_context():
            for table in ("ab_user_group", "ab_group_role", "ab_group"):
                column = "id" if table == "ab_group" else "group_id"
                db.session.execute(
                    text(f"DELETE FROM {table} WHERE {column} = :g"), {"g": group_id}
                )  # noqa: S608
            db.session.commit()


def test_a_token_is_verified_once_and_refused_once_it_has_expired(app, client, monkeypatch):
    import datetime as dt
    import time

    from flask_jwt_extended import JWTManager, create_access_token

    verified: list[str] = []
    original = JWTManager._decode_jwt_from_config

    def counting(self, encoded_token, *args, **kwargs):
        verified.append(encoded_token)
        return original(self, encoded_token, *args, **kwargs)

    monkeypatch.setattr(JWTManager, "_decode_jwt_from_config", counting)
    headers = sign_up(client, email="brief@example.com")
    verified.clear()
    assert client.get("/api/v1/orders/", headers=headers).status_code == 200
    assert client.get("/api/v1/orders/", headers=headers).status_code == 200
    assert len(verified) == 1
    forged = headers["Authorization"][:-2] + ("AA" if not headers["Authorization"].endswith("AA")
                                               else "BB")  # fmt: skip
    # A bad signature: flask-jwt-extended answers 422, as it did before tokens were kept.
    assert client.get("/api/v1/orders/", headers={"Authorization": forged}).status_code == 422

    with app.test_request_context():
        user = db.session.scalars(
            select(PartnerUser).where(PartnerUser.email == "brief@example.com")
        ).one()
        brief = create_access_token(str(user.id), expires_delta=dt.timedelta(seconds=1))
    short = {"Authorization": f"Bearer {brief}"}
    assert client.get("/api/v1/orders/", headers=short).status_code == 200
    time.sleep(1.2)
    assert client.get("/api/v1/orders/", headers=short).status_code == 401


def test_a_request_loading_its_token_user_and_the_permissions_takes_one_connection(app):
    """A node's first API request loads the role permissions and the token's user: one pooled
    connection after the other, never two at once, so a pool of one connection serves it (a
    request holding one connection while waiting for a second can starve a busy pool)."""
    options = {**app.config["SQLALCHEMY_ENGINE_OPTIONS"], "pool_size": 1, "max_overflow": 0}
    with another_app(app, SQLALCHEMY_ENGINE_OPTIONS={**options, "pool_timeout": 3}) as node:
        client = node.test_client()
        headers = sign_up(client, email="one-connection@example.com")
        node.appbuilder.sm.permission_cache.clear()  # both caches cold, as on a new node
        node.appbuilder.sm.jwt_users._users.clear()
        assert client.get("/api/v1/orders/", headers=headers).status_code == 200
