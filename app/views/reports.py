"""Reports: request one (the task writes it; at once in the embedded default), list them and
download the file. A partner's users request, see and download only their partner's sales and
statements; finance every kind, for any partner or all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import abort, current_app, flash, redirect, request, send_file, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.widgets import FormWidget
from flask_babel import gettext, lazy_gettext
from markupsafe import Markup
from sqlalchemy import select

from app.extensions import db
from app.models import KIND_LABELS, DomainError, Forbidden, NotFound, Partner, Report
from app.models.base import utcnow
from app.services import reports
from app.services.scoping import is_platform_staff
from app.views.base import ScopedModelView, current_user
from app.views.forms import ReportRequestForm

MIMETYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _download_link(report_id: int | None) -> Markup | str:
    if report_id is None:
        return "-"
    return Markup(
        '<a class="btn btn-sm btn-primary" href="{}"><i class="fa fa-download"></i> {}</a>'
    ).format(url_for("ReportView.download", pk=report_id), gettext("Download"))


class ReportView(ScopedModelView):
    datamodel = SQLAInterface(Report)
    list_title = lazy_gettext("Reports")
    show_title = lazy_gettext("Report")
    add_title = lazy_gettext("Request a report")
    base_permissions = ["can_list", "can_show", "can_add", "can_download"]
    list_template = "appbuilder/general/model/list.html"
    list_columns = [
        "id", "kind_label", "format", "period", "partner", "status", "row_count", "created_at",
        "file_id",
    ]  # fmt: skip
    show_columns = [
        "id", "kind_label", "format", "period", "partner", "status", "row_count", "error",
        "requested_by", "created_at", "started_at", "finished_at", "file_id",
    ]  # fmt: skip
    search_columns = ["kind", "format", "status", "partner", "created_at"]
    order_columns = ["id", "status", "created_at"]
    base_order = ("id", "desc")
    # FAB builds its forms from these; requests go through ReportRequestForm and the service.
    add_columns = edit_columns = ["kind", "format"]
    label_columns = {
        "kind_label": lazy_gettext("Report"),
        "row_count": lazy_gettext("Rows"),
        "file_id": lazy_gettext("File"),
    }
    formatters_columns = {"file_id": _download_link, "error": lambda error: error or "-"}

    @expose("/add", methods=["GET", "POST"])
    @has_access
    def add(self) -> Any:
        user = current_user()
        form = ReportRequestForm(request.form if request.method == "POST" else None)
        form.kind.choices = [(kind.value, KIND_LABELS[kind]) for kind in reports.kinds_for(user)]
        if is_platform_staff(user):
            partners = db.session.execute(select(Partner.id, Partner.name).order_by(Partner.name))
            form.partner.choices = [("", "Every partner")] + [(str(i), n) for i, n in partners]
        else:
            del form.partner  # their own partner, always
        status = 200
        if request.method == "POST" and form.validate():
            partner = getattr(form, "partner", None)
            try:
                report = reports.request_report(
                    db.session,
                    user,
                    form.kind.data,
                    form.format.data,
                    start=form.start.data,
                    end=form.end.data,
                    partner_id=int(partner.data) if partner is not None and partner.data else None,
                    now=utcnow(),
                )
            except DomainError as err:
                db.session.rollback()
                self._show_error(form, err.message, err.field)
                status = 403 if isinstance(err, Forbidden) else 200
            else:
                flash(*self._request_message(report))
                return redirect(url_for(".show", pk=report.id))
        widgets = {"add": FormWidget(form=form, include_cols=list(form._fields))}
        page = self.render_template(self.add_template, title=self.add_title, widgets=widgets)
        return page, status

    @staticmethod
    def _request_message(report: Report) -> tuple[str, str]:
        if report.file_id is not None:
            ready = gettext(
                "Report %(id)s is ready: %(rows)s rows.", id=report.id, rows=report.row_count
            )
            return ready, "success"
        if report.error:
            return gettext(
                "Report %(id)s failed: %(error)s", id=report.id, error=report.error
            ), "danger"
        writing = gettext(
            "Report %(id)s is being written; it is listed here when ready.", id=report.id
        )
        return writing, "info"

    # Replaces FAB's generic file download (uploaded files) for this view.
    @expose("/download/<int:pk>")
    @has_access
    def download(self, pk: int) -> Any:
        report = self.datamodel.get(pk, self._base_filters)
        if report is None:
            abort(404)
        try:
            path = reports.report_file(report, Path(current_app.config["REPORTS_DIR"]))
        except NotFound:
            abort(404)
        return send_file(
            path,
            mimetype=MIMETYPES[report.format],
            as_attachment=True,
            download_name=report.download_name,
        )
