"""Flask-AppBuilder security: our user model (with partner membership), its admin view, and a
per-process cache of role permissions.

FAB asks the database on every request whether the public role or the user's roles hold a
permission (two to three queries a request). Permissions change only at deploy
(`flask perms sync`), so each process keeps them for PERMISSION_CACHE_SECONDS; a sync in this
process clears its cache at once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import current_app, g, request
from flask_appbuilder.api import expose, safe
from flask_appbuilder.security.api import SecurityApi as FabSecurityApi
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.sqla.models import (
    Group,
    Permission,
    PermissionView,
    Role,
    ViewMenu,
    assoc_permissionview_role,
)
from flask_appbuilder.security.views import UserDBModelView
from flask_jwt_extended import JWTManager
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from app.models.customer import Customer
from app.models.partner import PartnerUser
from app.views.base import CheckedListMixin


class PartnerUserDBModelView(CheckedListMixin, UserDBModelView):
    """Admins attach a user to (at most) one partner here."""

    list_columns = ["first_name", "last_name", "username", "email", "partner", "active", "roles"]
    add_columns = [*UserDBModelView.add_columns, "partner"]
    edit_columns = [*UserDBModelView.edit_columns, "partner"]
    search_columns = ["first_name", "last_name", "username", "email", "active", "roles", "partner"]
    show_fieldsets = [
        ("User info", {"fields": ["username", "active", "roles", "partner", "login_count"]}),
        *UserDBModelView.show_fieldsets[1:],
    ]
    description_columns = {
        "partner": "Partner and gate staff belong to exactly one partner; platform staff to none."
    }


class RolePermissionCache:
    """(view, permission) pairs per role, loaded in one query and kept for ``ttl`` seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._by_id: dict[int, frozenset[tuple[str, str]]] = {}
        self._by_name: dict[str, frozenset[tuple[str, str]]] = {}

    def clear(self) -> None:
        with self._lock:
            self._loaded_at = float("-inf")

    def _fresh(self, session: Any) -> None:
        ttl = current_app.config.get("PERMISSION_CACHE_SECONDS", 30)
        if time.monotonic() - self._loaded_at < ttl:
            return
        with self._lock:
            if time.monotonic() - self._loaded_at < ttl:
                return
            rows = session.execute(
                select(Role.id, Role.name, ViewMenu.name, Permission.name)
                .select_from(Role)
                .outerjoin(
                    assoc_permissionview_role, assoc_permissionview_role.c.role_id == Role.id
                )
                .outerjoin(
                    PermissionView,
                    PermissionView.id == assoc_permissionview_role.c.permission_view_id,
                )
                .outerjoin(ViewMenu, ViewMenu.id == PermissionView.view_menu_id)
                .outerjoin(Permission, Permission.id == PermissionView.permission_id)
            ).all()
            by_id: dict[int, set[tuple[str, str]]] = {}
            names: dict[int, str] = {}
            for role_id, role_name, view, permission in rows:
                names[role_id] = role_name
                pairs = by_id.setdefault(role_id, set())
                if view is not None and permission is not None:
                    pairs.add((view, permission))
            self._by_id = {rid: frozenset(p) for rid, p in by_id.items()}
            self._by_name = {names[rid]: frozen for rid, frozen in self._by_id.items()}
            self._loaded_at = time.monotonic()

    def role_has(self, session: Any, role_ids: list[int], view: str, permission: str) -> bool:
        self._fresh(session)
        return any((view, permission) in self._by_id.get(rid, ()) for rid in role_ids)

    def named_role_has(self, session: Any, role_name: str, view: str, permission: str) -> bool:
        self._fresh(session)
        return (view, permission) in self._by_name.get(role_name, ())


class JwtUserCache:
    """API requests' users, kept per process for JWT_USER_CACHE_SECONDS: loading a user and its
    roles was a tenth of the purchase path's CPU. A deactivated user, or a role change, reaches
    API tokens within that delay (the token itself lives longer)."""

    MAX_USERS = 10_000

    def __init__(self) -> None:
        self._users: dict[tuple[int, str | None], tuple[float, Any]] = {}
        self._lock = threading.Lock()  # request threads add while another may be pruning

    def get(self, key: tuple[int, str | None], load: Any) -> Any:
        """The user of (user id, token id): per token, so that no other user is ever answered
        for a token, even where ids are reused (a test database emptied between tests)."""
        now = time.monotonic()
        hit = self._users.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        user = load(key)
        ttl = current_app.config.get("JWT_USER_CACHE_SECONDS", 10)
        if user is not None and ttl > 0:
            with self._lock:
                if len(self._users) >= self.MAX_USERS:
                    self._users = {k: v for k, v in self._users.items() if v[0] > now}
                    if len(self._users) >= self.MAX_USERS:  # all still fresh: start over
                        self._users = {}
                self._users[key] = (now + ttl, user)
        return user

    def clear(self) -> None:
        self._users = {}  # a new dict: a thread reading the old one is not disturbed


class CachingJWTManager(JWTManager):
    """Verifies each API token once per process, then answers its claims from memory until the
    token expires: a token's bytes always decode to the same claims, and decoding (twice: the
    library reads the claims unverified first) was a tenth of an API request's CPU. Failures
    are never kept; a token without an expiry is verified every time."""

    MAX_TOKENS = 10_000

    def __init__(self, app: Any = None, add_context_processor: bool = False) -> None:
        super().__init__(app, add_context_processor)
        self._claims: dict[tuple[str, str | None, bool], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()  # request threads add while another may be pruning

    def _decode_jwt_from_config(
        self, encoded_token: str, csrf_value: str | None = None, allow_expired: bool = False
    ) -> dict[str, Any]:
        key = (encoded_token, csrf_value, allow_expired)
        now = time.time()
        hit = self._claims.get(key)
        if hit is not None and hit[0] > now:
            return dict(hit[1])
        claims = super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        expires = claims.get("exp")
        if isinstance(expires, int | float) and expires > now:
            with self._lock:
                if len(self._claims) >= self.MAX_TOKENS:
                    self._claims = {k: v for k, v in self._claims.items() if v[0] > now}
                    if len(self._claims) >= self.MAX_TOKENS:  # all still valid: start over
                        self._claims = {}
                self._claims[key] = (float(expires), dict(claims))
        return claims

    def forget_tokens(self) -> None:
        self._claims = {}


class SecurityApi(FabSecurityApi):
    """FAB's token login, which answered 500 (KeyError) to a body without ``provider``. Same
    class name: the endpoint (``SecurityApi.login``, rate-limited) and the spec are FAB's."""

    @expose("/login", methods=["POST"])
    @safe
    def login(self) -> Any:
        body = request.get_json(silent=True)
        if isinstance(body, dict) and "provider" not in body:
            return self.response_400(message={"provider": ['Missing data: "db".']})
        return super().login()


class BilheteriaSecurityManager(SecurityManager):
    user_model = PartnerUser
    userdbmodelview = PartnerUserDBModelView
    security_api = SecurityApi
    # FAB's "User's Statistics" chart answered 500 to an unknown grouping in its URL, and
    # counts users by role, which the user list already shows: not registered.
    userstatschartview = None

    def __init__(self, appbuilder: Any) -> None:
        super().__init__(appbuilder)
        self.permission_cache = RolePermissionCache()
        self.jwt_users = JwtUserCache()

    def create_jwt_manager(self, app: Any) -> Any:
        # As FAB's, with tokens verified once per process (CachingJWTManager).
        jwt_manager = CachingJWTManager()
        jwt_manager.init_app(app)
        jwt_manager.user_lookup_loader(self.load_user_jwt)
        jwt_manager.additional_claims_loader(self._customer_claim)
        return jwt_manager

    def _customer_claim(self, identity: Any) -> dict[str, int]:
        """API tokens of customers carry their customer id: no lookup on every request."""
        customer_id = self.session.scalar(
            select(Customer.id).where(Customer.user_id == int(identity))
        )
        return {"customer_id": customer_id} if customer_id else {}

    def exist_permission_on_roles(
        self, view_name: str, permission_name: str, role_ids: list[int]
    ) -> bool:
        return self.permission_cache.role_has(self.session, role_ids, view_name, permission_name)

    def is_item_public(self, permission_name: str, view_name: str) -> bool:
        return self.permission_cache.named_role_has(
            self.session, self.auth_role_public, view_name, permission_name
        )

    def load_user_jwt(self, _jwt_header: Any, jwt_data: dict[str, Any]) -> Any:
        """The user of an API token, from this process's short-lived cache (JwtUserCache)."""
        user = self.jwt_users.get(
            (int(jwt_data["sub"]), jwt_data.get("jti")), lambda key: self._detached_user(key[0])
        )
        if user is not None and user.is_active:
            g.user = user
            return user
        return None

    def _detached_user(self, pk: int) -> Any:
        """The user, its roles, groups and partner, loaded in a session of their own that is
        closed at once: detached objects any request may read, which no request's session
        expires."""
        with Session(self.session.get_bind()) as session:
            query = self._user_query(pk).options(
                joinedload(self.user_model.partner),
                # FAB reads the roles of the user's groups too: loaded now, not lazily on a
                # closed session.
                joinedload(self.user_model.groups).selectinload(Group.roles),
            )
            return session.scalars(query).unique().first()

    def get_user_by_id(self, pk: int) -> Any:
        return self.session.scalars(self._user_query(pk)).unique().first()

    def _user_query(self, pk: int) -> Any:
        # One query for the user, its roles and groups (FAB loads them lazily, one by one).
        return (
            select(self.user_model)
            .where(self.user_model.id == pk)
            .options(joinedload(self.user_model.roles), joinedload(self.user_model.groups))
        )
