"""Every configuration key, read from the environment in one place.

See the README's configuration table. ``load_config()`` returns a plain dict so the
application factory and tests can override single keys.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from app import ratelimit
from app.i18n import LOCALES
from app.pg_cursor import LazyDescriptionCursor

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "dev-only-secret-key-never-use-in-production"  # noqa: S105 - refused outside development/test
# The embedded PostgreSQL (app/local_postgres.py) of `make run`, when DATABASE_URL is unset.
EMBEDDED_POSTGRES_DIR = PROJECT_ROOT / "var" / "postgres"
EMBEDDED_DATABASE = "bilheteria"


class ConfigError(RuntimeError):
    """The environment does not describe a runnable configuration."""


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict[str, str], key: str, default: int, minimum: int = 0) -> int:
    """An integer setting, at least ``minimum`` (0 unless said): a negative retention or hold
    length was accepted and failed late (the nightly job would delete every report file)."""
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{key} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {value}")
    return value


def _rate_limit(env: dict[str, str], key: str, default: str) -> str:
    """A Flask-Limiter limit such as "10 per minute": an unparsable one silently limited
    nothing."""
    from limits import parse_many

    value = env.get(key) or default
    try:
        parse_many(value)
    except ValueError as exc:
        raise ConfigError(f"{key} must be a limit such as '10 per minute', got {value!r}") from exc
    return value


def _currency(env: dict[str, str], key: str, default: str) -> str:
    value = (env.get(key) or default).strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise ConfigError(f"{key} must be a three-letter currency code (BRL), got {value!r}")
    return value


def _locale(env: dict[str, str], key: str) -> str:
    value = env.get(key) or LOCALES[0]
    if value not in LOCALES:
        raise ConfigError(f"{key} must be one of {', '.join(LOCALES)}, got {value!r}")
    return value


def _decimal(env: dict[str, str], key: str, default: str) -> Decimal:
    raw = env.get(key) or default
    try:
        return Decimal(raw)
    except InvalidOperation as exc:
        raise ConfigError(f"{key} must be a decimal number, got {raw!r}") from exc


def _crontab(env: dict[str, str], key: str, default: str) -> str:
    raw = env.get(key) or default
    if len(raw.split()) != 5:
        raise ConfigError(f"{key} must be a crontab (minute hour day month weekday), got {raw!r}")
    return raw


def _path(env: dict[str, str], key: str, default: Path) -> str:
    """A directory; a relative one is taken from the project's root."""
    raw = env.get(key)
    return str(PROJECT_ROOT / raw if raw else default)


def password_rule(password: str) -> None:
    """The dashboard's password forms (a user's, reset my password) follow the one password
    rule (app.services.accounts)."""
    from flask_appbuilder.exceptions import PasswordComplexityValidationError
    from flask_login import current_user

    from app.services.accounts import password_problem

    inputs = []
    if getattr(current_user, "is_authenticated", False):  # reset my password: its own names
        inputs = [current_user.username, current_user.email]
    problem = password_problem(password, inputs)
    if problem is not None:
        raise PasswordComplexityValidationError(problem)


def _roles(env: dict[str, str], key: str, default: str) -> list[str]:
    raw = env.get(key)
    return [name.strip() for name in (default if raw is None else raw).split(",") if name.strip()]


def rate_limit_key() -> str:
    """Limits count per logged-in user, else per client address."""
    from flask import g, request
    from flask_jwt_extended import get_jwt_identity, verify_jwt_in_request

    user = g.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.id}"
    try:  # an API token: the limit runs before the view has checked it
        token = verify_jwt_in_request(optional=True)
    except Exception:  # noqa: BLE001 - an invalid token counts against the address
        token = None
    if token is not None:
        return f"user:{get_jwt_identity()}"
    return f"ip:{request.remote_addr}"


def load_config(environ: dict[str, str] | None = None) -> dict[str, Any]:
    env = dict(os.environ if environ is None else environ)
    app_env = env.get("APP_ENV", "development")
    if app_env not in {"development", "test", "production"}:
        raise ConfigError(f"APP_ENV must be development, test or production, got {app_env!r}")
    secret_key = env.get("SECRET_KEY") or DEV_SECRET_KEY
    if app_env == "production" and secret_key == DEV_SECRET_KEY:
        raise ConfigError("SECRET_KEY must be set outside development and test")

    database_url = env.get("DATABASE_URL") or None
    if database_url is None and app_env == "production":
        raise ConfigError("DATABASE_URL must name the PostgreSQL server in production")
    if database_url is not None:
        if not database_url.startswith(("postgresql://", "postgresql+psycopg://")):
            raise ConfigError(f"DATABASE_URL must be a postgresql:// URL, got {database_url!r}")
        # psycopg 3 is the driver we ship.
        database_url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    redis_url = env.get("REDIS_URL") or None

    engine_options: dict[str, Any] = {
        # Pooled connections are checked only after sitting idle (DB_PING_IDLE_SECONDS,
        # app.extensions.ping_idle_connections), not on every checkout.
        "pool_pre_ping": False,
        "pool_size": _int(env, "DB_POOL_SIZE", 10, minimum=1),
        "max_overflow": 20,
        "connect_args": {
            # A server that accepts the connection and never answers fails it (readiness and
            # every request would hang on it).
            "connect_timeout": _int(env, "DB_CONNECT_TIMEOUT_SECONDS", 5, minimum=1),
            # Result columns described only when read (app/pg_cursor.py).
            "cursor_factory": LazyDescriptionCursor,
        },
    }
    lock_timeout_ms = _int(env, "LOCK_TIMEOUT_MS", 2000, minimum=1)
    if _bool(env.get("DB_PGBOUNCER"), False):
        # PgBouncer in transaction mode lends a server connection for one transaction at a
        # time, so nothing may outlive a transaction on it: no server-side prepared statements
        # (PgBouncer before 1.21 cannot follow them), and no startup options (it refuses
        # them): its connect_query sets the lock timeout of every server connection instead
        # (ops/cluster.py). The application holds no other session state (no advisory locks,
        # SET, LISTEN or temporary tables; tests/unit/test_pgbouncer_safe.py).
        engine_options["connect_args"]["prepare_threshold"] = None
    else:
        # No statement waits longer than this for a row lock: a busy seat answers "try
        # again" (Busy) instead of piling up requests.
        engine_options["connect_args"]["options"] = f"-c lock_timeout={lock_timeout_ms}"

    secure_cookies = _bool(env.get("SESSION_COOKIE_SECURE"), app_env == "production")
    password_strength = _int(env, "PASSWORD_MIN_STRENGTH", 3)
    if password_strength > 4:
        raise ConfigError(
            f"PASSWORD_MIN_STRENGTH is a zxcvbn score, 0 to 4: got {password_strength}"
        )
    return {
        "APP_ENV": app_env,
        "TESTING": app_env == "test",
        "SECRET_KEY": secret_key,
        # None: the embedded PostgreSQL under EMBEDDED_POSTGRES_DIR, started by create_app.
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url or "memory://",
        # Without a broker the embedded default runs tasks in-process.
        "CELERY_TASK_ALWAYS_EAGER": _bool(env.get("CELERY_TASK_ALWAYS_EAGER"), redis_url is None),
        # A task taken by a worker that died (acks_late) goes back to the queue after this long.
        # Longer than the longest task, else a slow one runs twice at once (money tasks are
        # idempotent, so that costs time, not money).
        "CELERY_VISIBILITY_TIMEOUT": _int(env, "CELERY_VISIBILITY_TIMEOUT", 1800, minimum=60),
        # A report still pending, or a cancelled event's refunds not begun, this long after its
        # task was sent: the broker lost the task, and the beat's sweep sends it again (longer
        # than a task normally waits in its queue; a task sent twice does its work once).
        "LOST_TASK_GRACE_MINUTES": _int(env, "LOST_TASK_GRACE_MINUTES", 5, minimum=1),
        "HOLD_MINUTES": _int(env, "HOLD_MINUTES", 10, minimum=1),
        # Gate check-in: events are armed (validation data copied to Redis) this long before
        # their check-in window opens.
        "CHECKIN_ARM_AHEAD_HOURS": _int(env, "CHECKIN_ARM_AHEAD_HOURS", 6),
        "MAX_SPOTS_PER_EVENT": _int(env, "MAX_SPOTS_PER_EVENT", 10, minimum=1),
        # Waiting rooms (events with waiting_room_per_minute): how long a buyer let in may hold
        # spots, and how many come in at once after a quiet spell.
        "WAITING_ROOM_TURN_MINUTES": _int(env, "WAITING_ROOM_TURN_MINUTES", 10, minimum=1),
        "WAITING_ROOM_BURST": _int(env, "WAITING_ROOM_BURST", 10, minimum=1),
        # E-mail (Flask-Mail's names). Without MAIL_SERVER mails wait in the outbox, unsent,
        # until a server is named (`make run` starts a local catch-all and names it).
        "MAIL_SERVER": env.get("MAIL_SERVER") or None,
        "MAIL_PORT": _int(env, "MAIL_PORT", 25, minimum=1),
        "MAIL_USE_TLS": _bool(env.get("MAIL_USE_TLS"), False),
        "MAIL_USE_SSL": _bool(env.get("MAIL_USE_SSL"), False),
        "MAIL_USERNAME": env.get("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": env.get("MAIL_PASSWORD") or None,
        "MAIL_DEFAULT_SENDER": env.get("MAIL_DEFAULT_SENDER")
        or "Bilheteria <nao-responda@bilheteria.example>",
        "MAIL_TIMEOUT_SECONDS": _int(env, "MAIL_TIMEOUT_SECONDS", 30, minimum=1),
        # The address people reach the site at: links in mails (a reset link, an order).
        "PUBLIC_URL": (env.get("PUBLIC_URL") or "http://127.0.0.1:5000").rstrip("/"),
        # A password-reset link works this long, once.
        "PASSWORD_RESET_MINUTES": _int(env, "PASSWORD_RESET_MINUTES", 60, minimum=5),
        "DEFAULT_CURRENCY": _currency(env, "DEFAULT_CURRENCY", "BRL"),
        # How money, numbers and dates read when a request names no language it prefers, and
        # outside requests (app/i18n.py): pt_BR or en.
        "DEFAULT_LOCALE": _locale(env, "DEFAULT_LOCALE"),
        "REFUND_RETURNS_PLATFORM_FEE": _bool(env.get("REFUND_RETURNS_PLATFORM_FEE"), True),
        "PAYMENT_GATEWAY": env.get("PAYMENT_GATEWAY", "app.services.payments.SimulatedGateway"),
        # The simulated acquirer's fee on each captured charge (its settlement report).
        "SIM_ACQUIRER_FEE_PERCENT": _decimal(env, "SIM_ACQUIRER_FEE_PERCENT", "2.5"),
        "SIM_ACQUIRER_FEE_FIXED_CENTS": _int(env, "SIM_ACQUIRER_FEE_FIXED_CENTS", 30),
        # When the payout task runs (UTC crontab): weekly, Monday 06:00, by default.
        "PAYOUT_SCHEDULE": _crontab(env, "PAYOUT_SCHEDULE", "0 6 * * mon"),
        # Where report files are written (one file per report, streamed to downloads).
        "REPORTS_DIR": _path(env, "REPORTS_DIR", PROJECT_ROOT / "var" / "reports"),
        # A report's file is deleted this long after it was written (the report stays listed).
        "REPORT_RETENTION_DAYS": _int(env, "REPORT_RETENTION_DAYS", 30, minimum=1),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        "LOG_JSON": _bool(env.get("LOG_JSON"), True),
        "RATELIMIT_ENABLED": _bool(env.get("RATELIMIT_ENABLED"), app_env != "test"),
        # Redis through app/ratelimit.py (one round trip per limited request).
        "RATELIMIT_STORAGE_URI": ratelimit.storage_uri(redis_url) if redis_url else "memory://",
        # Redis down or slow: count in each process's memory meanwhile (Flask-Limiter looks for
        # Redis again, backing off) rather than fail login, hold and checkout with a 500.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_STORAGE_OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_KEY_FUNC": rate_limit_key,
        "RATELIMIT_LOGIN": _rate_limit(env, "RATELIMIT_LOGIN", "10 per minute"),
        "RATELIMIT_SIGNUP": _rate_limit(env, "RATELIMIT_SIGNUP", "5 per minute"),
        "RATELIMIT_HOLD": _rate_limit(env, "RATELIMIT_HOLD", "30 per minute"),
        "RATELIMIT_CHECKOUT": _rate_limit(env, "RATELIMIT_CHECKOUT", "20 per minute"),
        "RATELIMIT_QUEUE": _rate_limit(env, "RATELIMIT_QUEUE", "10 per minute"),
        # Ticket transfers, per customer: each names an e-mail and learns whether it has an
        # account, so they are few (a customer passes a handful of tickets on, not hundreds).
        "RATELIMIT_TRANSFER": _rate_limit(env, "RATELIMIT_TRANSFER", "10 per hour"),
        # Password-reset requests: per client address (429), and links per account (past it,
        # asking again sends nothing, and says so no differently: app/services/password_reset.py).
        "RATELIMIT_PASSWORD_RESET": _rate_limit(env, "RATELIMIT_PASSWORD_RESET", "5 per hour"),
        # Flask-AppBuilder: Alembic owns the tables and `flask perms sync` owns permissions.
        "FAB_CREATE_DB": False,
        "FAB_UPDATE_PERMS": False,
        "FAB_ADD_SECURITY_VIEWS": True,
        "FAB_API_SWAGGER_UI": True,
        "FAB_SECURITY_MANAGER_CLASS": "app.views.security.BilheteriaSecurityManager",
        "PERMISSION_CACHE_SECONDS": _int(env, "PERMISSION_CACHE_SECONDS", 30),
        # API tokens' users are kept this long per process (a deactivation reaches them after it).
        "JWT_USER_CACHE_SECONDS": _int(env, "JWT_USER_CACHE_SECONDS", 10),
        "DB_PING_IDLE_SECONDS": _int(env, "DB_PING_IDLE_SECONDS", 10),
        "FAB_PASSWORD_HASH_METHOD": env.get("PASSWORD_HASH_METHOD", "scrypt"),
        "FAB_INDEX_VIEW": "app.views.home.HomeView",
        "APP_NAME": "Bilheteria",
        "AUTH_TYPE": 1,  # AUTH_DB
        "AUTH_ROLE_ADMIN": "Admin",
        "AUTH_ROLE_PUBLIC": "Public",
        "AUTH_USER_REGISTRATION": False,
        "WTF_CSRF_ENABLED": _bool(env.get("WTF_CSRF_ENABLED"), True),
        # The session cookie: never sent by a cross-site POST, and only over HTTPS in production
        # (SESSION_COOKIE_SECURE=false for a production-like run on plain HTTP).
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": secure_cookies,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": secure_cookies,
        # The most bytes of body a request may send, where its route family has no smaller
        # limit (app/views/guards.py, BODY_LIMITS): the dashboards' forms.
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        # Browsers keep to HTTPS for this long after a visit (Strict-Transport-Security); 0
        # sends no such header (development and tests, on plain HTTP).
        "HSTS_SECONDS": _int(
            env, "HSTS_SECONDS", 365 * 24 * 3600 if app_env == "production" else 0
        ),
        # /metrics asks for "Authorization: Bearer <METRICS_TOKEN>" when set. Unset, it answers
        # only requests from this machine, outside production (404 in production: the
        # per-endpoint counts tell a partner's sales).
        "METRICS_TOKEN": env.get("METRICS_TOKEN") or None,
        # Scrape-time gauges (queries of the database and Redis) are kept this long.
        "METRICS_STATE_SECONDS": _int(env, "METRICS_STATE_SECONDS", 10, minimum=0),
        # Behind this many reverse proxies, the client's address (rate limits, logs) and scheme
        # come from X-Forwarded-For / -Proto; 0 trusts no such header.
        "PROXY_HOPS": _int(env, "PROXY_HOPS", 0),
        # Passwords set in the dashboard (reset my password, a user's form) follow sign-up's rule.
        "FAB_PASSWORD_COMPLEXITY_ENABLED": True,
        "FAB_PASSWORD_COMPLEXITY_VALIDATOR": password_rule,
        "JWT_ACCESS_TOKEN_EXPIRES": _int(env, "JWT_ACCESS_TOKEN_MINUTES", 60, minimum=1) * 60,
        # A password must score at least this (zxcvbn, 0 to 4) besides 8 characters or more.
        "PASSWORD_MIN_STRENGTH": password_strength,
        # Users with one of these roles must sign in with a TOTP code (two-factor); other staff
        # may turn it on. Comma-separated; empty for none.
        "TOTP_REQUIRED_ROLES": _roles(
            env, "TOTP_REQUIRED_ROLES", "Admin,Finance" if app_env == "production" else ""
        ),
        # The key two-factor secrets are encrypted with (derived from SECRET_KEY when unset:
        # set it to change SECRET_KEY without staff enrolling again).
        "TOTP_KEY": env.get("TOTP_KEY") or None,
    }
