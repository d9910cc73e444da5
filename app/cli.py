"""Operator commands: `flask perms sync` (at deploy), `flask demo load` (demo data) and
`flask demo serve` (what `make run` runs)."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.extensions import db

perms_cli = AppGroup("perms", help="Roles and permissions.")
demo_cli = AppGroup("demo", help="Demo data.")


@perms_cli.command("sync")
def perms_sync() -> None:
    """Create all permissions and write each role's permission set (run at deploy)."""
    from app.views.roles import sync_permissions

    for role, count in sync_permissions(current_app.appbuilder).items():
        click.echo(f"{role}: {count} permissions")


@demo_cli.command("load")
@click.option("--if-empty", is_flag=True, help="Only load into a database without events.")
def demo_load(if_empty: bool) -> None:
    """Sync permissions and create the demo users, partners and events (idempotent)."""
    _load_demo(if_empty)


@demo_cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
def demo_serve(host: str, port: int) -> None:
    """Migrate, sync permissions, load the demo into an empty database and serve it, in one
    process: with DATABASE_URL unset, the embedded PostgreSQL it started stops when it exits."""
    from flask_migrate import upgrade
    from werkzeug.serving import run_simple

    upgrade()
    _load_demo(if_empty=True)
    db.session.remove()
    click.echo(f"Shop: http://{host}:{port}/   Dashboard: http://{host}:{port}/dashboard/")
    run_simple(host, port, current_app._get_current_object(), threaded=True)  # type: ignore[attr-defined]


def _load_demo(if_empty: bool) -> None:
    """Sync the roles' permissions, load the demo (with ``if_empty``, only into a database
    without events) and print the logins."""
    from app.services import demo
    from app.views.roles import sync_permissions

    sync_permissions(current_app.appbuilder)
    if if_empty and demo.has_events(db.session):
        click.echo("Database already has events: demo data not loaded.")
    else:
        click.echo(demo.load(db.session, current_app.appbuilder.sm))
    click.echo(demo.LOGINS_BANNER)


def register_cli(app: Flask) -> None:
    app.cli.add_command(perms_cli)
    app.cli.add_command(demo_cli)
