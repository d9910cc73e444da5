"""Reports finance and partners export (docs/ARCHITECTURE.md, "Money"): sales per event, a partner's
statement for a period, platform revenue per day, and the batch file of approved payouts.

A request is a Report row; a Celery task writes its file. Rows come from the database in chunks
(``yield_per``: a server-side cursor on PostgreSQL) and go to the CSV file or the write-only XLSX
workbook one by one, so memory stays flat whatever the number of rows; the file is written under
REPORTS_DIR and renamed into place once complete. Money comes from integer cents: a decimal
string ("1234.56") in CSV, a numeric cell with its currency's format in XLSX. Every figure
comes from the ledger, read in one snapshot; a statement's closing balance is checked against
``ledger.partner_balance`` at the period's end before the file is kept.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from pathlib import Path

from flask import current_app
from flask_babel import force_locale, gettext
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.i18n import DEFAULT_LOCALE, current_locale
from app.models import (
    KIND_LABELS,
    DomainError,
    Forbidden,
    NotFound,
    Partner,
    Report,
    ReportFormat,
    ReportKind,
    ReportStatus,
)
from app.models.base import any_of, utcnow
from app.services.after_commit import enqueue, enqueue_again
from app.services.reports.contents import (
    BUILDERS,
    NEEDS_PERIOD,
    PARTNER_KINDS,
    PLATFORM_WIDE,
    Period,
    ReportMismatch,
    sales_rows,
)
from app.services.reports.files import Money, money, open_writer, spreadsheet_cell
from app.services.reports.headers import header_row
from app.services.scoping import Actor, get_owned, is_platform_staff

__all__ = [
    "BUILDERS",
    "Money",
    "Period",
    "ReportKind",
    "ReportMismatch",
    "delete_old_files",
    "generate_report",
    "kinds_for",
    "money",
    "report_file",
    "request_report",
    "resend_lost",
    "sales_rows",
    "spreadsheet_cell",
]

log = logging.getLogger(__name__)


# -- requests ------------------------------------------------------------------------------------


def kinds_for(actor: Actor | None) -> list[ReportKind]:
    """The kinds of report the actor may request."""
    return list(ReportKind) if is_platform_staff(actor) else list(PARTNER_KINDS)


def request_report(
    session: Session,
    actor: Actor | None,
    kind: str,
    file_format: str,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    partner_id: int | None = None,
    now: dt.datetime,
) -> Report:
    """Record the request and, after the commit, have the task write the file (at once in the
    embedded default, where tasks run in-process)."""
    try:
        wanted = ReportKind(kind)
    except ValueError:
        raise DomainError(gettext("Choose a kind of report."), field="kind") from None
    try:
        fmt = ReportFormat(file_format)
    except ValueError:
        raise DomainError(gettext("Choose CSV or XLSX."), field="format") from None
    if wanted not in kinds_for(actor):
        raise Forbidden(
            gettext("Only finance requests %(kind)s reports.", kind=KIND_LABELS[wanted].lower()),
            field="kind",
        )
    period = Period.of(start, end, required=wanted in NEEDS_PERIOD)
    report = Report(
        kind=wanted.value,
        format=fmt.value,
        # The language of the file's headers: the requester's now (the task has no request).
        params=(period.params() if period else {}) | {"locale": current_locale()},
        partner_id=_partner_of_request(session, actor, wanted, partner_id),
        requested_by_id=getattr(actor, "id", None),
        status=ReportStatus.PENDING.value,
        created_at=now,
    )
    session.add(report)
    session.flush()  # its id, for the task sent once this commits
    enqueue(session, "reports.generate", report.id)
    session.commit()
    session.refresh(report)  # the task may have written it already
    return report


def _partner_of_request(
    session: Session, actor: Actor | None, kind: ReportKind, partner_id: int | None
) -> int | None:
    """A partner's user reports on its own partner; platform staff on the partner they choose,
    or on every partner."""
    if not is_platform_staff(actor):
        own = getattr(actor, "partner_id", None)
        if own is None:
            raise Forbidden(gettext("Your user belongs to no partner."))
        if partner_id not in (None, own):
            raise NotFound(gettext("Partner not found."), field="partner")
        return own
    if partner_id is None:
        return None
    if kind in PLATFORM_WIDE:
        raise DomainError(
            gettext(
                "%(kind)s covers every partner: leave the partner empty.", kind=KIND_LABELS[kind]
            ),
            field="partner",
        )
    return get_owned(session, Partner, partner_id, actor).id


def report_file(report: Report, directory: Path) -> Path:
    """The written file of a report (found through the caller's scope); NotFound until then."""
    if report.status == ReportStatus.EXPIRED:
        raise NotFound(
            gettext(
                "The report's file was deleted after %(report_retention_days)s days: "
                "request the report again.",
                report_retention_days=current_app.config["REPORT_RETENTION_DAYS"],
            )
        )
    if report.status != ReportStatus.DONE or not report.file_name:
        raise NotFound(gettext("The report's file is not ready."))
    path = _path_of(report.file_name, directory)
    if not path.is_file():
        raise NotFound(gettext("The report's file is gone."))
    return path


def _path_of(file_name: str, directory: Path) -> Path:
    """Where a report's file is: its bare name under the directory (never elsewhere)."""
    return directory / Path(file_name).name


def resend_lost(
    session: Session, now: dt.datetime, grace: dt.timedelta, *, batch: int = 500
) -> list[int]:
    """Send the task again for every report whose task has not begun ``grace`` after it was
    last sent (the broker lost it, or its queue is that far behind), and for every report a
    dead worker left running that long (its redelivery lost too); returns their ids. A report
    being written is skipped (its writer holds its row: SKIP LOCKED), and so is one sent again
    less than ``grace`` ago, whoever else sweeps at the same time. The task writes a report
    once however often it is sent (``generate_report``)."""
    due = now - grace
    lost = list(
        session.scalars(
            select(Report.id)
            .where(
                func.coalesce(Report.sent_at, Report.created_at) < due,
                or_(
                    Report.status == ReportStatus.PENDING,
                    and_(Report.status == ReportStatus.RUNNING, Report.started_at < due),
                ),
            )
            .order_by(Report.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    )
    if lost:
        session.execute(
            update(Report)
            .where(any_of(Report.id, lost))
            .values(sent_at=now)
            .execution_options(synchronize_session=False)
        )
        for report_id in lost:
            enqueue_again(session, "reports.generate", report_id)
        log.warning("report tasks sent again", extra={"report_ids": lost})
    session.commit()
    return lost


# A partial file older than this was left by a worker that died writing it.
PARTIAL_FILE_MAX_AGE = dt.timedelta(days=1)


def delete_old_files(session: Session, directory: Path, now: dt.datetime | None = None) -> int:
    """Delete the files of reports written more than REPORT_RETENTION_DAYS ago (the reports stay
    listed as expired; a new request writes a fresh file) and partial files that dead workers
    left; returns how many reports expired. The reports are marked first: a file that outlives
    a crash in between is an orphan, never a listed report without its file."""
    now = now or utcnow()
    kept_since = now - dt.timedelta(days=current_app.config["REPORT_RETENTION_DAYS"])
    old = session.scalars(
        select(Report).where(Report.status == ReportStatus.DONE, Report.finished_at < kept_since)
    ).all()
    files = [_path_of(report.file_name, directory) for report in old if report.file_name]
    for report in old:
        report.expire()
    session.commit()
    for path in files:
        path.unlink(missing_ok=True)
    if directory.is_dir():
        stale = now - PARTIAL_FILE_MAX_AGE
        for partial in directory.glob(".report-*.part"):
            written = dt.datetime.fromtimestamp(partial.stat().st_mtime, dt.UTC)
            if written.replace(tzinfo=None) < stale:
                partial.unlink(missing_ok=True)
    if old:
        log.info("report files deleted", extra={"reports": len(old)})
    return len(old)


# -- generation ----------------------------------------------------------------------------------


def generate_report(session: Session, report_id: int, directory: Path) -> Report:
    """Write the report's file (the task), once however many times its task is delivered: a
    written report is left alone, and so is one another run is writing (the writer holds the
    report's row locked until the file is in place and the report done); one a dead worker left
    running (its row no longer locked) is written again. A failure is recorded on the report for
    its reader to see."""
    started = _claim(session, report_id)
    if started is None:
        session.rollback()
        return session.get(Report, report_id)
    # The file (its headers) and any error in the language of whoever asked, not the task's.
    with force_locale(_locale_of(session, report_id)):
        try:
            report = _write(session, report_id, started, directory)
        except Exception as exc:
            session.rollback()
            log.exception("report failed", extra={"report_id": report_id})
            failed = gettext("The file could not be written.")
            return _fail(
                session, report_id, started, exc.message if isinstance(exc, DomainError) else failed
            )
    if report is None:  # another run claimed it between this one's claim and its lock
        session.rollback()
        return session.get(Report, report_id)
    log.info("report written", extra={"report_id": report_id, "rows": report.row_count})
    return report


def _locked(session: Session, report_id: int, *conditions: ColumnElement[bool]) -> Report | None:
    """The report, its row locked for this transaction; None when another transaction holds it
    (SKIP LOCKED: a run writing it) or ``conditions`` do not hold."""
    return session.scalars(
        select(Report)
        .where(Report.id == report_id, *conditions)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).first()


def _claim(session: Session, report_id: int) -> dt.datetime | None:
    """Mark the report running for this run; returns when it started (this run's claim), or
    None when there is nothing to do: written already, expired, or being written by another run
    right now."""
    report = _locked(session, report_id)
    if report is None:
        if session.get(Report, report_id) is None:
            raise NotFound(gettext("Report %(report_id)s not found.", report_id=report_id))
        return None  # its writer holds it
    if report.status in (ReportStatus.DONE, ReportStatus.EXPIRED):
        return None
    started = utcnow()
    report.start(started)
    session.commit()
    return started


def _locale_of(session: Session, report_id: int) -> str:
    params = session.scalar(select(Report.params).where(Report.id == report_id)) or {}
    session.rollback()
    return params.get("locale") or DEFAULT_LOCALE


def _fail(session: Session, report_id: int, started: dt.datetime, error: str) -> Report:
    """Record the failure, unless another run claimed the report since this one did."""
    report = _locked(session, report_id, Report.started_at == started)
    if report is not None:
        report.fail(error, utcnow())
    session.commit()
    return session.get(Report, report_id)


def _write(
    session: Session, report_id: int, started: dt.datetime, directory: Path
) -> Report | None:
    """In one transaction, which reads one snapshot and holds the report's row: the rows, the
    file renamed into place, the report done. None when another run claimed the report since
    this one did (it writes it)."""
    _begin_snapshot(session)
    report = _locked(
        session, report_id, Report.status == ReportStatus.RUNNING, Report.started_at == started
    )
    if report is None:
        return None
    kind = ReportKind(report.kind)
    period = Period.from_params(report.params)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"report-{report.id}.{report.format}"
    # One partial file per run, renamed into place once complete: a run that dies leaves only
    # its own partial file (delete_old_files removes it), never a half-written report.
    partial = directory / f".{name}.{uuid.uuid4().hex[:12]}.part"
    try:
        count = _write_rows(session, report, kind, period, partial)
        os.replace(partial, directory / name)
    finally:
        partial.unlink(missing_ok=True)
    report.finish(name, count, utcnow())
    # Ends the snapshot and releases the row (and keeps ledger accounts created on first look).
    session.commit()
    return report


def _write_rows(
    session: Session, report: Report, kind: ReportKind, period: Period | None, partial: Path
) -> int:
    """The file's rows, its header in the current language; how many rows."""
    columns, rows = BUILDERS[kind](session, report.partner_id, period)
    count = 0
    with open_writer(partial, ReportFormat(report.format), str(KIND_LABELS[kind])) as writer:
        writer.writerow(header_row(columns))
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _begin_snapshot(session: Session) -> None:
    """Every query of a report sees the same committed state, even while others post: its
    totals and the ledger balances they are checked against agree."""
    session.commit()  # the isolation level applies only to a transaction not begun yet
    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
