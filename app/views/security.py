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

from flask import abort, current_app, flash, g, has_request_context, redirect, request
from flask import session as cookie_session
from flask_appbuilder.actions import action
from flask_appbuilder.api import expose, safe
from flask_appbuilder.security.api import SecurityApi as FabSecurityApi
from flask_appbuilder.security.schemas import login_post
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
from flask_babel import gettext, lazy_gettext
from flask_jwt_extended import JWTManager, create_access_token, create_refresh_token
from flask_login import current_user, login_user, user_logged_in, user_logged_out
from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from app.extensions import db
from app.i18n import N_
from app.models import DomainError
from app.models.customer import Customer
from app.models.partner import PartnerUser
from app.services import accounts, two_factor
from app.views.base import CheckedListMixin
from app.views.two_factor import AuthDBView

# The session cookie's keys: its LoginSession row (app/services/accounts.py) and the user's
# session epoch when it signed in.
SESSION_ID = "session_id"
SESSION_EPOCH = "session_epoch"


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
        "partner": lazy_gettext(
            "Partner and gate staff belong to exactly one partner; platform staff to none."
        )
    }

    def post_update(self, item: Any) -> None:
        # Roles, partner or activity changed: cached gate credentials and API users are
        # read again (a deactivation has ended the user's sessions: PartnerUser).
        accounts.forget_cached(item.id)

    @action(
        "reset_two_factor",
        N_("Reset two-factor sign-in"),
        lazy_gettext("Forget this user's two-factor secret (a lost phone)? The user enrols again."),
        "fa-key",
        multiple=False,
    )
    def reset_two_factor(self, item: Any) -> Any:
        two_factor.reset(db.session, item)
        flash(
            gettext("Two-factor sign-in of %(username)s is reset.", username=item.username), "info"
        )
        return redirect(self.get_redirect())


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
        """Load the pairs again once ``ttl`` has passed, on a connection of its own returned at
        once: the request's session takes none here, so a request never holds two pooled
        connections at once (this one, then the JWT user's: ``_detached_user``)."""
        ttl = current_app.config.get("PERMISSION_CACHE_SECONDS", 30)
        if time.monotonic() - self._loaded_at < ttl:
            return
        with self._lock, session.get_bind().connect() as conn:
            if time.monotonic() - self._loaded_at < ttl:
                return
            rows = conn.execute(
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

    def forget_user(self, user_id: int) -> None:
        """Drop ``user_id``'s entries (its sessions ended: its new epoch is read at once)."""
        self._users = {key: hit for key, hit in self._users.items() if key[0] != user_id}


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
    """FAB's token login with the two-factor code (``totp``) for users who have it on, and a
    400, not FAB's 500, for a body without ``provider``. Same class name: the endpoint
    (``SecurityApi.login``, rate-limited) and the spec are FAB's."""

    @expose("/login", methods=["POST"])
    @safe
    def login(self) -> Any:
        """Sign in for an API token (and a refresh token with ``refresh``).
        ---
        post:
          summary: Sign in
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [username, password, provider]
                  properties:
                    username: {type: string}
                    password: {type: string}
                    provider: {type: string, enum: [db]}
                    refresh: {type: boolean}
                    totp:
                      type: string
                      description: The six-digit code of the user's authenticator app, for
                        users with two-factor sign-in on (401 totp_required without it)
          responses:
            200:
              description: access_token (and refresh_token)
            400:
              $ref: '#/components/responses/400'
            401:
              description: Wrong login or password, or a missing or wrong two-factor code
            403:
              description: The user's role requires two-factor sign-in, not yet turned on
        """
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message=lazy_gettext("Request payload is not a JSON object"))
        if "provider" not in body:
            return self.response_400(message={"provider": ['Missing data: "db".']})
        code = body.pop("totp", None)
        if code is not None and not isinstance(code, str):
            return self.response_400(message={"totp": ["A string of six digits."]})
        credentials = [body.get(key) for key in ("username", "password")]
        if not accounts.storable(*(value for value in credentials if isinstance(value, str))):
            return self.response_400(
                message=lazy_gettext("The username and password must be valid text.")
            )
        try:
            payload = login_post.load(body)
        except ValidationError as error:
            return self.response_400(message=error.messages)
        sm = self.appbuilder.sm
        user = sm.auth_user_db(payload["username"], payload["password"])
        if not user:
            return self.response_401()
        refused = self._second_factor(user, code)
        if refused is not None:
            return refused
        tokens = {"access_token": create_access_token(identity=str(user.id), fresh=True)}
        if payload.get("refresh"):
            tokens["refresh_token"] = create_refresh_token(identity=str(user.id))
        return self.response(200, **tokens)

    def _second_factor(self, user: Any, code: str | None) -> Any:
        """None when ``user`` may have tokens; else the refusal."""
        if user.has_two_factor:
            if not code:
                message = lazy_gettext("Enter the code of your authenticator app (totp).")
                return self.response(401, error="totp_required", message=message)
            try:
                two_factor.verify(db.session, user, code)
            except DomainError as err:
                db.session.rollback()
                return self.response(err.status, error=err.code, message=err.message)
        elif two_factor.must_enrol(user):
            message = lazy_gettext(
                "Your role requires two-factor sign-in: turn it on in the dashboard first."
            )
            return self.response(403, error="two_factor_required", message=message)
        return None


class BilheteriaSecurityManager(SecurityManager):
    user_model = PartnerUser
    userdbmodelview = PartnerUserDBModelView
    security_api = SecurityApi
    authdbview = AuthDBView
    # FAB's "User's Statistics" chart answered 500 to an unknown grouping in its URL, and
    # counts users by role, which the user list already shows: not registered.
    userstatschartview = None

    def __init__(self, appbuilder: Any) -> None:
        super().__init__(appbuilder)
        self.permission_cache = RolePermissionCache()
        self.jwt_users = JwtUserCache()
        app = current_app._get_current_object()
        user_logged_in.connect(self._signed_in, app)
        user_logged_out.connect(self._signed_out, app)
        accounts.sessions_ended.connect(self._sessions_ended)

    def _signed_in(self, _app: Any, user: Any, **_: Any) -> None:
        """Every sign-in (form, code step, sign-up) starts a session the server can end."""
        cookie_session[SESSION_ID] = accounts.start_session(self.session, user.id)
        cookie_session[SESSION_EPOCH] = user.session_epoch

    def _signed_out(self, _app: Any, user: Any = None, **_: Any) -> None:
        cookie_session.pop(SESSION_EPOCH, None)
        session_id = cookie_session.pop(SESSION_ID, None)
        if isinstance(session_id, str):
            accounts.end_session(self.session, session_id)

    def _sessions_ended(self, _sender: Any, user_id: int, **_: Any) -> None:
        self.jwt_users.forget_user(user_id)

    def load_user(self, pk: Any) -> Any:
        """The user of a session cookie, while its session lives (accounts.is_live, in the
        one query that loads the user) and the user's sessions have not been ended since."""
        session_id = cookie_session.get(SESSION_ID)
        if not isinstance(session_id, str) or not str(pk).isdigit():
            return None
        query = self._user_query(int(pk)).where(accounts.is_live(session_id, int(pk)))
        user = self.session.scalars(query).unique().first()
        if user is None or not user.is_active:
            return None
        return user if user.session_epoch == cookie_session.get(SESSION_EPOCH) else None

    def add_user(  # noqa: PLR0913 - FAB's signature
        self,
        username: str,
        first_name: str,
        last_name: str,
        email: str,
        role: Any = None,
        password: str = "",
        hashed_password: str = "",
        groups: Any = None,
        commit: bool = True,
    ) -> Any:
        """FAB's, with the password rule for a password given in clear (CLI, demo, sign-up)."""
        if password and not hashed_password:
            accounts.check_password(password, [username, email, first_name, last_name])
        return super().add_user(
            username, first_name, last_name, email, role, password, hashed_password, groups, commit
        )

    def reset_password(self, userid: Any, password: str) -> None:
        """A changed or reset password ends every session and token of the user. Changing
        one's own, this browser goes on in a new session (copies of its cookie do not)."""
        user = self.get_user_by_id(int(userid)) if str(userid).isdigit() else None
        if user is None:
            abort(404)
        accounts.set_password(self.session, user, password)
        signed_in = has_request_context() and getattr(current_user, "is_authenticated", False)
        if signed_in and current_user.id == user.id:
            login_user(user)

    def create_jwt_manager(self, app: Any) -> Any:
        # As FAB's, with tokens verified once per process (CachingJWTManager).
        jwt_manager = CachingJWTManager()
        jwt_manager.init_app(app)
        jwt_manager.user_lookup_loader(self.load_user_jwt)
        jwt_manager.additional_claims_loader(self._token_claims)
        return jwt_manager

    def _token_claims(self, identity: Any) -> dict[str, int]:
        """Every API token carries the user's session epoch (a token of an older epoch is
        refused); customers' tokens their customer id (no lookup on every request)."""
        row = self.session.execute(
            select(PartnerUser.session_epoch, Customer.id)
            .outerjoin(Customer, Customer.user_id == PartnerUser.id)
            .where(PartnerUser.id == int(identity))
        ).first()
        if row is None:
            return {}
        epoch, customer_id = row
        return {"epoch": epoch, "customer_id": customer_id} if customer_id else {"epoch": epoch}

    def exist_permission_on_roles(
        self, view_name: str, permission_name: str, role_ids: list[int]
    ) -> bool:
        return self.permission_cache.role_has(self.session, role_ids, view_name, permission_name)

    def is_item_public(self, permission_name: str, view_name: str) -> bool:
        return self.permission_cache.named_role_has(
            self.session, self.auth_role_public, view_name, permission_name
        )

    def load_user_jwt(self, _jwt_header: Any, jwt_data: dict[str, Any]) -> Any:
        """The user of an API token, from this process's short-lived cache (JwtUserCache), if
        the token is of the user's current session epoch. A refresh token (rare, and good for
        days) reads the user afresh."""
        pk = int(jwt_data["sub"])
        if jwt_data.get("type") == "refresh":
            user = self._detached_user(pk)
        else:
            user = self.jwt_users.get((pk, jwt_data.get("jti")), lambda k: self._detached_user(pk))
        if user is None or not user.is_active:
            return None
        if jwt_data.get("epoch", 0) != user.session_epoch:
            return None  # issued before a password change, a reset or a deactivation
        g.user = user
        return user

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
