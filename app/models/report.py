"""Report requests: what finance or a partner asked to export, and where the file is once written
(ARCHITECTURE.md, "Money"). The rows themselves come from the ledger when a Celery task writes
the file.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User
from flask_babel import gettext, lazy_gettext
from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.models.base import enum_check, utcnow
from app.models.errors import Conflict
from app.models.partner import Partner


class ReportKind(enum.StrEnum):
    SALES = "sales_by_event"
    STATEMENT = "partner_statement"
    REVENUE = "platform_revenue"
    PAYOUT_BATCH = "payout_batch"


KIND_LABELS = {
    ReportKind.SALES: lazy_gettext("Sales per event"),
    ReportKind.STATEMENT: lazy_gettext("Partner statement"),
    ReportKind.REVENUE: lazy_gettext("Platform revenue"),
    ReportKind.PAYOUT_BATCH: lazy_gettext("Payout batch file"),
}


class ReportFormat(enum.StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


class ReportStatus(enum.StrEnum):
    PENDING = "pending"  # requested, waiting for the task
    RUNNING = "running"  # the task is writing the file
    DONE = "done"  # the file is ready to download
    FAILED = "failed"  # the task gave up: see the error
    EXPIRED = "expired"  # the file was deleted after REPORT_RETENTION_DAYS: request it again


class Report(Model):
    __tablename__ = "report"
    __table_args__ = (
        enum_check("kind", ReportKind, "ck_report_kind"),
        enum_check("format", ReportFormat, "ck_report_format"),
        enum_check("status", ReportStatus, "ck_report_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    format: Mapped[str] = mapped_column(String(8), nullable=False)
    # What was asked beyond kind and partner: {"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}.
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    # The partner the report is about and whose users may read it; none: every partner
    # (platform staff only).
    partner_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("partner.id", ondelete="RESTRICT"), index=True
    )
    requested_by_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=ReportStatus.PENDING.value
    )
    # The file's name inside REPORTS_DIR, once written.
    file_name: Mapped[str | None] = mapped_column(String(200))
    row_count: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # When the beat's sweep last sent its task again (None: only the request sent it, at
    # created_at): a report still pending this long after (LOST_TASK_GRACE_MINUTES) lost its
    # task (services/reports, ``resend_lost``).
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    partner: Mapped[Partner | None] = relationship()
    requested_by: Mapped[User | None] = relationship(User)

    def __repr__(self) -> str:
        return gettext("Report %(id)s", id=self.id)

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.partner_id == partner_id

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(ReportKind(self.kind), self.kind)

    @property
    def period(self) -> str:
        start, end = (self.params or {}).get("start"), (self.params or {}).get("end")
        return f"{start} to {end}" if start and end else "-"

    @property
    def file_id(self) -> int | None:
        """The id to download the file by, once it is ready."""
        return self.id if self.status == ReportStatus.DONE else None

    @property
    def download_name(self) -> str:
        start, end = (self.params or {}).get("start"), (self.params or {}).get("end")
        period = f"-{start}-{end}" if start and end else ""
        return f"{self.kind.replace('_', '-')}{period}-{self.id}.{self.format}"

    def start(self, now: dt.datetime) -> None:
        """The task begins (again, when a worker died writing it)."""
        if self.status == ReportStatus.DONE:
            raise Conflict(gettext("Report %(id)s is already written.", id=self.id))
        self.status = ReportStatus.RUNNING.value
        self.started_at = now
        self.error = None

    def finish(self, file_name: str, row_count: int, now: dt.datetime) -> None:
        if self.status != ReportStatus.RUNNING:
            raise Conflict(
                gettext("Report %(id)s is %(status)s, not running.", id=self.id, status=self.status)
            )
        self.status = ReportStatus.DONE.value
        self.file_name = file_name
        self.row_count = row_count
        self.finished_at = now

    def expire(self) -> None:
        """Its file is deleted (kept REPORT_RETENTION_DAYS); the request stays listed."""
        if self.status != ReportStatus.DONE:
            raise Conflict(
                gettext(
                    "Report %(id)s is %(status)s: it has no file.", id=self.id, status=self.status
                )
            )
        self.status = ReportStatus.EXPIRED.value

    def fail(self, error: str, now: dt.datetime) -> None:
        if self.status == ReportStatus.DONE:
            return  # a second delivery of the task failed: the first one wrote the file
        self.status = ReportStatus.FAILED.value
        self.error = error[:300]
        self.finished_at = now
