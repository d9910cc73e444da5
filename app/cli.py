"""Operator commands: `flask perms sync` (at deploy), `flask demo load` (demo data),
`flask demo serve` (what `make run` runs) and `flask money settle|payouts` (the scheduled money
runs, now)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.extensions import db

perms_cli = AppGroup("perms", help="Roles and permissions.")
demo_cli = AppGroup("demo", help="Demo data.")
money_cli = AppGroup("money", help="Settlement and payouts, run now.")


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
@click.option(
    "--beat/--no-beat",
    default=True,
    show_default=True,
    help="Run Celery beat's schedule in this process (app/tasks/in_process_beat.py); "
    "--no-beat when `make beat` runs it.",
)
def demo_serve(host: str, port: int, beat: bool) -> None:
    """Migrate, sync permissions, load the demo into an empty database and serve it, in one
    process, with the periodic tasks running in a thread of it: with DATABASE_URL unset, the
    embedded PostgreSQL it started stops when it exits, after the tasks' thread."""
    from flask_migrate import upgrade
    from werkzeug.serving import run_simple

    from app.tasks.in_process_beat import InProcessBeat

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    public_url = app.config.get("PUBLIC_URL")
    if not os.environ.get("PUBLIC_URL"):  # links in mails point at this server
        app.config["PUBLIC_URL"] = f"http://{_reachable(host)}:{port}"
    catch_all = _start_catch_all(app)
    from app.services.mail.pump import MailPump

    pump = MailPump(app).start()  # mails leave from a thread, not inside the request
    upgrade()
    _load_demo(if_empty=True)
    db.session.remove()
    scheduler = InProcessBeat(current_app.extensions["celery"]) if beat else None
    if scheduler is not None:
        scheduler.start()
        click.echo("Periodic tasks: running in this process (each once now, then on schedule).")
    click.echo(f"Shop: http://{host}:{port}/   Dashboard: http://{host}:{port}/dashboard/")
    if catch_all is not None:
        click.echo(
            f"Mail: caught by a local SMTP server on port {catch_all.port}, read at "
            f"http://{host}:{port}/dashboard/demo-mail/ (admin)."
        )
    # SIGTERM (a process manager, `kill`) ends it as Ctrl-C does: through the finally below and
    # the exit handlers that stop the embedded PostgreSQL (killed outright, it kept running).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run_simple(host, port, app, threaded=True)
    finally:
        if scheduler is not None:
            scheduler.stop()
        pump.stop()
        if catch_all is not None:
            catch_all.stop()
        app.config["PUBLIC_URL"] = public_url


def _reachable(host: str) -> str:
    """The address a browser reaches a server listening on ``host`` at."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - a comparison


def _start_catch_all(app: Flask) -> Any:
    """Without MAIL_SERVER, the demo's mails go to a catch-all SMTP server of its own, kept in
    var/mail and read at *Demo mail* (linked in the menu only then)."""
    from app.i18n import N_
    from app.services.mail import catch_all
    from app.views import PLATFORM

    started = catch_all.start_for_demo(app, Path(app.root_path).parent / "var" / "mail")
    if started is not None:
        app.appbuilder.add_link(
            N_("Demo mail"), href="/dashboard/demo-mail/", icon="fa-inbox", category=PLATFORM
        )
    return started


@money_cli.command("settle")
@click.option(
    "--day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The UTC day to reconcile (YYYY-MM-DD); by default every day over and not reconciled.",
)
def money_settle(day: dt.datetime | None) -> None:
    """Reconcile the acquirer's settlement report of a day that is over, as the hourly task
    does; a day reconciled before posts nothing more."""
    from app.models import DomainError
    from app.services import money_runs

    try:
        summaries = money_runs.settle(db.session, day.date() if day else None)
    except DomainError as err:
        raise click.ClickException(err.message) from err
    if not summaries:
        click.echo("No day to reconcile.")
    for summary in summaries:
        click.echo(money_runs.describe_settlement(summary))


@money_cli.command("payouts")
def money_payouts() -> None:
    """Make the payouts due now (settled money less the reserve), as the scheduled run does;
    run again, it makes none until more money is available."""
    from app.services import money_runs

    click.echo(money_runs.describe_payouts(db.session, money_runs.payouts_now(db.session)))


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
    app.cli.add_command(money_cli)
