"""Bilheteria: the application factory, a readable list of configure steps."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, g
from flask_appbuilder import AppBuilder
from werkzeug.exceptions import HTTPException

from app.config import load_config
from app.extensions import csrf, db, migrate, ping_idle_connections
from app.pg_cursor import keep_long_queries_converted


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    configure_config(app, overrides)
    from app.cookie_session import install as install_cookie_sessions

    install_cookie_sessions(app)
    from app.services.payments import gateway_class

    gateway_class(app.config["PAYMENT_GATEWAY"])  # a typo fails here, not at the first payment
    from app.observability import configure_logging, configure_metrics

    configure_logging(app)
    configure_database(app)
    from app.views.guards import install as install_id_guards

    install_id_guards(app)  # before any route: ids in URLs are checked as they are matched
    configure_appbuilder(app)
    configure_blueprints(app)
    configure_rate_limits(app)
    configure_headers(app)
    configure_errors(app)
    configure_celery(app)
    configure_cli(app)
    configure_metrics(app)
    from app.sim_acquirer.fast import install as install_token_fast_path
    from app.views.checkin_fast import install as install_checkin_fast_path
    from app.views.holds_fast import install as install_holds_fast_path

    install_token_fast_path(app)  # the simulated acquirer's card tokens, without Flask
    install_holds_fast_path(app)  # a sold-out section's late buyers refused from memory
    install_checkin_fast_path(app)  # outermost: a gate's scan skips the rest when it can
    configure_proxy(app)
    return app


def configure_proxy(app: Flask) -> None:
    """Behind PROXY_HOPS reverse proxies, take the client's address and scheme from their
    X-Forwarded-* headers (rate limits count per client, not per proxy)."""
    hops = app.config["PROXY_HOPS"]
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]


def configure_config(app: Flask, overrides: dict[str, Any] | None) -> None:
    app.config.update(load_config())
    app.config.update(overrides or {})


def configure_database(app: Flask) -> None:
    if app.config["SQLALCHEMY_DATABASE_URI"] is None:  # DATABASE_URL unset: the embedded server
        from app import local_postgres
        from app.config import EMBEDDED_DATABASE, EMBEDDED_POSTGRES_DIR

        app.config["SQLALCHEMY_DATABASE_URI"] = local_postgres.start(
            EMBEDDED_POSTGRES_DIR, EMBEDDED_DATABASE
        )
    db.init_app(app)
    from app.models.base import alembic_include_object

    migrate.init_app(
        app,
        db,
        directory=str(_migrations_dir()),
        compare_type=True,
        include_object=alembic_include_object,
    )
    with app.app_context():
        ping_idle_connections(db.engine, app.config["DB_PING_IDLE_SECONDS"])
    keep_long_queries_converted()


def _migrations_dir() -> Any:
    from app.config import PROJECT_ROOT

    return PROJECT_ROOT / "migrations"


def configure_appbuilder(app: Flask) -> None:
    from app import i18n
    from app.views import register_views

    i18n.configure(app)
    # Before AppBuilder: FAB then exempts its token-authenticated APIs and puts tokens in forms.
    csrf.init_app(app)
    with app.app_context():
        appbuilder = AppBuilder(update_perms=False)
        appbuilder.init_app(app, db.session)
        register_views(appbuilder)
    i18n.install(app)


def configure_blueprints(app: Flask) -> None:
    from app.sim_acquirer import bp as sim_acquirer_bp
    from app.views import shop_orders  # noqa: F401 - its pages are on the shop blueprint
    from app.views.accounts import bp as accounts_bp
    from app.views.gate import bp as gate_bp
    from app.views.ops import bp as ops_bp
    from app.views.shop import bp as shop_bp

    app.register_blueprint(ops_bp)
    app.register_blueprint(shop_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(gate_bp)
    # A third party's endpoint in real life: it is not protected by our CSRF tokens.
    csrf.exempt(sim_acquirer_bp)
    app.register_blueprint(sim_acquirer_bp)


def configure_rate_limits(app: Flask) -> None:
    from app.views import apply_rate_limits

    apply_rate_limits(app)


def configure_headers(app: Flask) -> None:
    """No page is framed by another site (the card form, the dashboards), no type is guessed, no
    address (a no-JavaScript card token) goes to another site as a referrer, and no script runs
    but this site's files: our pages have no inline script, and FAB's inline scripts carry the
    response's nonce (its templates call ``csp_nonce()``). In production browsers are told to
    keep to HTTPS (HSTS_SECONDS)."""
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    hsts = app.config["HSTS_SECONDS"]

    @app.after_request
    def security_headers(response: Any) -> Any:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        nonce = f" 'nonce-{g.csp_nonce}'" if "csp_nonce" in g else ""
        headers.setdefault(
            "Content-Security-Policy",
            f"script-src 'self'{nonce}; object-src 'none'; base-uri 'self'; frame-ancestors 'self'",
        )
        headers.setdefault("Referrer-Policy", "same-origin")
        if hsts:
            headers.setdefault("Strict-Transport-Security", f"max-age={hsts}")
        return response


def csp_nonce() -> str:
    """This response's nonce for inline scripts, made when a template first asks for it."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return str(g.csp_nonce)


def configure_errors(app: Flask) -> None:
    """API clients get JSON errors, pages ours (app/views/errors.py), in the reader's
    language."""
    from sqlalchemy.exc import DBAPIError

    from app.views.errors import (
        answer_503_when_the_database_is_away,
        database_unavailable,
        http_error,
    )
    from app.views.guards import JSON_PATHS

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException) -> Any:
        return http_error(exc, JSON_PATHS)

    @app.errorhandler(DBAPIError)
    def on_database_error(exc: DBAPIError) -> Any:
        return database_unavailable(exc, JSON_PATHS)

    # FAB's APIs catch every exception themselves (``@safe``) and answer 500: theirs too.
    answer_503_when_the_database_is_away(JSON_PATHS)


def configure_celery(app: Flask) -> None:
    from app.tasks import init_celery

    init_celery(app)


def configure_cli(app: Flask) -> None:
    from app.cli import register_cli

    register_cli(app)
