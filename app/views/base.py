"""Shared view machinery: the partner-scope filter and scoped FAB views and APIs.

Every partner-owned view and API inherits from these, so list, show, edit, delete, single and
bulk actions, relation pickers and the REST API all apply the same scope (services/scoping.py).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from typing import Any

from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    request,
    url_for,
)
from flask_appbuilder import ModelRestApi, ModelView, has_access
from flask_appbuilder.baseviews import expose
from flask_appbuilder.exceptions import FABException
from flask_appbuilder.forms import GeneralModelConverter
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.urltools import (
    get_filter_args,
    get_order_args,
    get_page_args,
    get_page_size_args,
)
from flask_appbuilder.widgets import FormWidget
from flask_babel import gettext, lazy_gettext
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import CompileError, DataError, IntegrityError, ProgrammingError
from werkzeug.exceptions import BadRequest
from wtforms import Form

from app.extensions import db
from app.models.base import MAX_INT
from app.models.errors import DomainError, NotFound
from app.services import customers
from app.services.reports.files import spreadsheet_cell
from app.services.scoping import is_platform_staff, scope_clause
from app.views.guards import LIST_ADDRESS_REFUSED

log = logging.getLogger(__name__)

# What a list's address can hold that FAB does not check: a page that is not a number (FAB's
# int()), an order column it does not know (CompileError), a filter value of the wrong type for
# the column (the database's DataError or, comparing types, ProgrammingError).
BAD_LIST_ARGUMENTS = (FABException, ValueError, CompileError, DataError, ProgrammingError)


def current_user() -> Any:
    return current_app.appbuilder.sm.current_user


def current_customer() -> Any:
    """The signed-in user's Customer row; None when nobody is signed in or the user is staff
    without one (the shop's pages and the account pages send them to log in)."""
    user = current_user()
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    try:
        return customers.customer_of(db.session, user)
    except NotFound:
        return None


class PartnerScopeFilter(BaseFilter):
    """FAB base filter applying the partner scope of the current user to any partner-owned model."""

    name = lazy_gettext("Partner scope")

    def apply(self, query: Any, value: Any) -> Any:
        clause = scope_clause(self.model, current_user())
        return query if clause is None else query.filter(clause)


def _cell(item: Any, column: str) -> str:
    """A list column as the CSV shows it; text a spreadsheet would run as a formula (a partner's
    event named '=HYPERLINK(...)') is quoted as in the reports."""
    value = item
    for part in column.split("."):
        value = getattr(value, part, None)
    return "" if value is None else str(spreadsheet_cell(str(value)))


def _label(column: str) -> str:
    return column.replace("_", " ").capitalize()


def partner_owned(model: type | None) -> bool:
    return model is not None and hasattr(model, "partner_scope")


class ScopedMixin:
    """What views and APIs share: the scope as base filter, scoped relation pickers, checks of
    related rows, and the hooks ``on_add``/``on_update``/``on_delete`` where a model's rules run."""

    base_filters = [["id", PartnerScopeFilter, None]]
    datamodel: SQLAInterface

    def scoped_relations(self, columns: list[str]) -> list[str]:
        """Many-to-one relationships among ``columns`` whose target is partner-owned."""
        return [
            name
            for name in columns
            if self.datamodel.is_relation_many_to_one(name)
            and partner_owned(self.datamodel.get_related_model(name))
        ]

    def scope_pickers(self) -> None:
        # ModelView names them add_form_/edit_form_query_rel_fields, ModelRestApi
        # add_/edit_query_rel_fields: set both.
        for attr, columns in (
            ("add_form_query_rel_fields", self.add_columns),
            ("edit_form_query_rel_fields", self.edit_columns),
            ("add_query_rel_fields", self.add_columns),
            ("edit_query_rel_fields", self.edit_columns),
            ("search_form_query_rel_fields", getattr(self, "search_columns", [])),
        ):
            scoped = {
                name: [["id", PartnerScopeFilter, None]]
                for name in self.scoped_relations(list(columns or []))
            }
            setattr(self, attr, {**scoped, **(getattr(self, attr, None) or {})})

    def check_related_scope(self, item: Any) -> None:
        """A related row chosen by id must exist and be one the user may see: a tampered picker
        or an API body naming a missing row or another partner's answers 404 at its field."""
        actor = current_user()
        for name in self.datamodel.get_columns_list():
            if not self.datamodel.is_relation_many_to_one(name):
                continue
            related = getattr(item, name, None)
            if related is None:
                continue
            if sa_inspect(related).transient:  # the API's loader makes one for an unknown id
                raise NotFound(gettext("%(label)s not found.", label=_label(name)), field=name)
            if not partner_owned(type(related)):
                continue
            model = type(related)
            clause = scope_clause(model, actor)
            if clause is None:
                continue
            found = db.session.scalar(
                db.select(model.id).where(model.id == related.id, clause).limit(1)
            )
            if found is None:
                raise NotFound(gettext("%(label)s not found.", label=_label(name)), field=name)

    # The rules compare changed attributes with their loaded values: no autoflush may write
    # (and so forget) the changes before they have looked.
    def pre_add(self, item: Any) -> None:
        with db.session.no_autoflush:
            self.check_related_scope(item)
            self.on_add(item)

    def pre_update(self, item: Any) -> None:
        with db.session.no_autoflush:
            self.check_related_scope(item)
            self.on_update(item)

    def pre_delete(self, item: Any) -> None:
        self.on_delete(item)

    def on_add(self, item: Any) -> None:
        """The model's rules for a new row; raise DomainError to refuse."""

    def on_update(self, item: Any) -> None:
        """The model's rules for a changed row; raise DomainError to refuse."""

    def on_delete(self, item: Any) -> None:
        """The model's rules for deleting a row; raise DomainError to refuse."""


class CheckedListMixin:
    """FAB's list, with its address checked, and row pages showing only the related lists the
    user may list; for every dashboard view, scoped or not."""

    list_template: str
    list_title: str
    class_permission_name: str
    appbuilder: Any

    @expose("/list/")
    @has_access
    def list(self) -> Any:
        """FAB's list, with its address checked: a filter value of the wrong type, an unknown
        order column or a page that is not a number was a 500 (FAB parses them with ``int()``
        and hands the rest to the database)."""
        self.update_redirect()
        try:
            widgets = self._list()
        except BAD_LIST_ARGUMENTS as exc:
            return self._refuse_list_arguments(exc)
        return self.render_template(
            self.list_template,
            title=self.list_title,
            widgets=widgets,
            can_export=self.appbuilder.sm.has_access("can_export_csv", self.class_permission_name),
        )

    def _init_titles(self) -> None:
        """FAB's titles of the pages we give none ("Show Event"), translated as ours are."""
        super()._init_titles()  # type: ignore[misc]
        for attribute in ("list_title", "add_title", "edit_title", "show_title"):
            title = getattr(self, attribute, None)
            if isinstance(title, str):
                setattr(self, attribute, lazy_gettext(title))
        self.title = self.list_title

    def _prettify_column(self, name: str) -> Any:
        """FAB's label of a column without one of ours ("starts_at": "Starts At"), translated
        (tests/integration/test_languages.py checks that the catalog has each)."""
        return lazy_gettext(super()._prettify_column(name))  # type: ignore[misc]

    def render_template(self, template: str, **kwargs: Any) -> Any:
        """FAB shows a row's related lists (an event's sections, with prices and sales) without
        asking whether the user may list them: tabs the user may not list are left out."""
        related = kwargs.get("related_views")
        widgets = kwargs.get("widgets")
        if related and isinstance(widgets, dict) and "related_views" in widgets:
            allowed = [
                (view, widget)
                for view, widget in zip(related, widgets["related_views"], strict=True)
                if self.appbuilder.sm.has_access("can_list", view.class_permission_name)
            ]
            kwargs["related_views"] = [view for view, _ in allowed]
            widgets["related_views"] = [widget for _, widget in allowed]
        return super().render_template(template, **kwargs)  # type: ignore[misc]

    def _refuse_list_arguments(self, exc: Exception) -> Any:
        db.session.rollback()
        log.info("list arguments refused: %s", exc)
        flash(LIST_ADDRESS_REFUSED, "warning")
        return redirect(url_for(".list"))


class ScopedModelView(ScopedMixin, CheckedListMixin, ModelView):
    """A FAB ModelView whose every route, actions included, honours the partner scope, and whose
    forms keep the user's input and show which field a business rule refused."""

    #: form fields removed for users tied to one partner (the partner is implied)
    partner_only_hidden: tuple[str, ...] = ()
    #: the form field a model's error is shown at, when the form edits the column through
    #: another field (a price typed in currency units for ``price_cents``)
    error_fields: dict[str, str] = {}

    def __init__(self, **kwargs: Any) -> None:
        self.scope_pickers()  # before FAB builds the forms from these
        super().__init__(**kwargs)
        # Users tied to one partner get forms without the hidden columns at all.
        converter = GeneralModelConverter(self.datamodel)
        self._partner_forms = {
            created: converter.create_form(
                self.label_columns,
                self._visible(columns),
                self.description_columns,
                self.validators_columns,
                extra,
                rel_fields,
            )
            for created, columns, extra, rel_fields in (
                (True, self.add_columns, self.add_form_extra_fields,
                 self.add_form_query_rel_fields),
                (False, self.edit_columns, self.edit_form_extra_fields,
                 self.edit_form_query_rel_fields),
            )
        }  # fmt: skip

    def _visible(self, columns: list[str]) -> list[str]:
        return [c for c in columns if c not in self.partner_only_hidden]

    list_template = "dashboard/list.html"

    @expose("/export.csv")
    @has_access
    def export_csv(self) -> Response:
        """The list as CSV: same scope, same search filters, every page."""
        try:
            get_filter_args(self._filters)
            filters = self._filters.get_joined_filters(self._base_filters)
            # FAB wants text for "no order" (a view without base_order answered 500).
            _, items = self.datamodel.query(filters, *(self.base_order or ("", "")))
        except BAD_LIST_ARGUMENTS as exc:
            return self._refuse_list_arguments(exc)
        columns = list(self.list_columns)
        # Written while the request's session is open: cells read relations (an order's event,
        # an event's partner), which a stream read after the request could no longer load.
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([str(self.label_columns.get(c, c)) for c in columns])
        writer.writerows([_cell(item, c) for c in columns] for item in items)
        filename = f"{self.datamodel.obj.__tablename__}.csv"
        return Response(
            buffer.getvalue(),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    # FAB's action routes fetch rows without base filters: these fetch them through the scope.
    @expose("/action/<string:name>/<pk>", methods=["GET", "POST"])
    def action(self, name: str, pk: Any) -> Any:
        if request.method != "POST":
            abort(405)
        action = self.actions.get(name) or abort(404)
        if not self.appbuilder.sm.has_access(
            self.get_action_permission_name(name), self.class_permission_name
        ):
            abort(403)
        item = self.datamodel.get(self._deserialize_pk_if_composite(pk), self._base_filters)
        if item is None:
            abort(404)
        return action.func(item)

    @expose("/action_post", methods=["POST"])
    def action_post(self) -> Any:
        name = request.form.get("action", "")
        action = self.actions.get(name) or abort(404)
        if not self.appbuilder.sm.has_access(
            self.get_action_permission_name(name), self.class_permission_name
        ):
            abort(403)
        items = []
        for pk in request.form.getlist("rowid"):
            item = self.datamodel.get(self._deserialize_pk_if_composite(pk), self._base_filters)
            if item is None:
                abort(404)
            items.append(item)
        return action.func(items)

    def _form_class(self, created: bool) -> Any:
        if self.partner_only_hidden and not is_platform_staff(current_user()):
            return self._partner_forms[created]
        return self.add_form if created else self.edit_form

    def _form_widget(self, form: Form, created: bool) -> dict[str, Any]:
        columns = self.add_columns if created else self.edit_columns
        if self._form_class(created) is self._partner_forms.get(created):
            columns = self._visible(columns)
        widget = self.add_widget if created else self.edit_widget
        key = "add" if created else "edit"
        fieldsets = self.add_fieldsets if created else self.edit_fieldsets
        return {key: widget(form=form, include_cols=columns, exclude_cols=[], fieldsets=fieldsets)}

    def _save(self, form: Form, item: Any, *, created: bool) -> bool:
        """Populate, check the rules, write. On a refused rule the form shows the error at its
        field and keeps what the user typed."""
        try:
            with db.session.no_autoflush:
                form.populate_obj(item)
            if created:
                self.pre_add(item)
                db.session.add(item)
            else:
                self.pre_update(item)
            db.session.commit()
        except DomainError as err:
            db.session.rollback()
            self._show_error(form, err.message, self.error_fields.get(err.field or "", err.field))
            return False
        except IntegrityError:
            db.session.rollback()
            self._show_error(form, self.integrity_message, None)
            return False
        except DataError:
            db.session.rollback()
            self._show_error(form, "A value is out of range.", None)
            return False
        g.saved_pk = self.datamodel.get_pk_value(item)
        if created:
            self.post_add(item)
        else:
            self.post_update(item)
        return True

    def post_add_redirect(self) -> Any:
        """After saving, show what was saved (FAB's redirect history often pointed elsewhere)."""
        return redirect(url_for(".show", pk=g.saved_pk))

    def post_edit_redirect(self) -> Any:
        return redirect(url_for(".show", pk=g.saved_pk))

    integrity_message = lazy_gettext(
        "This conflicts with an existing row (a name or label already in use?)."
    )

    @staticmethod
    def _show_error(form: Form, message: str, field: str | None) -> None:
        if field and field in form:
            form[field].errors = [*form[field].errors, message]
        flash(message, "danger")

    def _add(self) -> Any:
        form = self._form_class(True).refresh()
        if request.method == "POST":
            if form.validate():
                self.process_form(form, True)
                if self._save(form, self.datamodel.obj(), created=True):
                    flash(self.add_row_message, "success")
                    return None
        else:
            self.update_redirect()
        return self._form_widget(form, True)

    def _edit(self, pk: Any) -> Any:
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        if request.method == "POST":
            form = self._form_class(False).refresh(request.form)
            form._id = self.datamodel.get_pk_value(item)
            if form.validate():
                self.process_form(form, False)
                if self._save(form, item, created=False):
                    flash(self.edit_row_message, "success")
                    return None
        else:
            form = self._form_class(False).refresh(obj=item)
            self.prefill_form(form, pk)
            self.update_redirect()
        widgets = self._form_widget(form, False)
        return self._get_related_views_widgets(
            item,
            orders=get_order_args(),
            pages=get_page_args(),
            page_sizes=get_page_size_args(),
            widgets=widgets,
        )

    def _delete(self, pk: Any) -> None:
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        try:
            self.pre_delete(item)
            db.session.delete(item)
            db.session.commit()
        except DomainError as err:
            db.session.rollback()
            flash(err.message, "danger")
            return
        except IntegrityError:
            db.session.rollback()
            flash(gettext("This row is still referenced and cannot be deleted."), "danger")
            return
        self.post_delete(item)
        flash(self.delete_row_message, "success")
        self.update_redirect()

    def row_form(
        self,
        pk: Any,
        form_class: type[Form],
        submit: Callable[[Any, Any], Any],
        *,
        title: Callable[[Any], str],
        columns: Callable[[Any], list[str]],
        prepare: Callable[[Any, Any], None] | None = None,
    ) -> Any:
        """A small form acting on one row of this view, found through the scope (404 otherwise).
        ``prepare(row, form)`` fills what depends on the row (choices); ``submit(row, form)``
        returns the response; a DomainError it raises is shown at its field with the input
        kept."""
        row = self.datamodel.get(pk, self._base_filters)
        if row is None:
            abort(404)
        form = form_class(request.form if request.method == "POST" else None)
        if prepare is not None:
            prepare(row, form)
        if request.method == "POST" and form.validate():
            try:
                return submit(row, form)
            except DomainError as err:
                db.session.rollback()
                self._show_error(form, err.message, err.field)
        return self.render_template(
            "appbuilder/general/model/edit.html",
            title=title(row),
            widgets={"edit": FormWidget(form=form, include_cols=columns(row))},
        )

    def run_each(self, items: Any, operation: Any, done: str) -> int:
        """Apply a service operation to one or several rows, flashing each refusal; returns how
        many succeeded. ``done`` is a msgid (N_) with a %(count)s."""
        items = items if isinstance(items, list) else [items]
        succeeded = 0
        for item in items:
            try:
                operation(item)
                succeeded += 1
            except DomainError as err:
                db.session.rollback()
                flash(err.message, "danger")
        if succeeded:
            flash(gettext(done, count=succeeded), "success")
        return succeeded


class ScopedModelRestApi(ScopedMixin, ModelRestApi):
    """A FAB ModelRestApi with the partner scope, answering domain errors as JSON 4xx."""

    allow_browser_login = True

    def __init__(self) -> None:
        self.scope_pickers()
        super().__init__()

    def _domain_guard(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except DomainError as err:
            db.session.rollback()
            return self.response(err.status, **err.to_json())
        except IntegrityError:
            db.session.rollback()
            return self.response(
                409, error="conflict", message=lazy_gettext("This conflicts with an existing row.")
            )
        except DataError:
            db.session.rollback()
            return self.response(
                422, error="invalid", message=lazy_gettext("A value is out of range.")
            )

    def post_headless(self) -> Any:
        return self._domain_guard(self._with_relation_ids, self.add_columns, super().post_headless)

    def put_headless(self, pk: Any) -> Any:
        return self._domain_guard(
            self._with_relation_ids, self.edit_columns, super().put_headless, pk
        )

    def _with_relation_ids(self, columns: list[str], call: Any, *args: Any) -> Any:
        """The body is a JSON object (FAB merged a list, a text or null into the row: a
        TypeError); a relation in it is a row's id (an integer) or null: FAB's loader would
        take a boolean, a text or an object too, and end in a database error or a TypeError."""
        body = request.get_json(silent=True)
        if request.is_json and not isinstance(body, dict):
            return self.response_400(
                message=lazy_gettext("Send a JSON object of the fields to set.")
            )
        if isinstance(body, dict):
            for name in columns:
                value = body.get(name)
                if value is None or not self.datamodel.is_relation_many_to_one(name):
                    continue
                if isinstance(value, bool) or not isinstance(value, int):
                    raise DomainError(
                        gettext("%(label)s must be an id (an integer).", label=_label(name)),
                        field=name,
                    )
                if not 0 < value <= MAX_INT:
                    raise NotFound(gettext("%(label)s not found.", label=_label(name)), field=name)
        return call(*args)

    def get_list_headless(self, **kwargs: Any) -> Any:
        """FAB's list; a filter value the column's type cannot hold (text for an id, on
        PostgreSQL) answers 400 instead of a database error's 500."""
        try:
            return super().get_list_headless(**kwargs)
        except BAD_LIST_ARGUMENTS:
            db.session.rollback()
            return self.response_400(
                message=lazy_gettext("A filter value does not fit its column.")
            )

    def _sanitize_page_args(self, page: int | None, page_size: int | None) -> Any:
        """FAB passed any page number to the database: a negative one or one past the last
        possible row was a database error (500)."""
        if page is not None and not 0 <= page <= MAX_INT:
            raise BadRequest(f"page must be between 0 and {MAX_INT}.")
        return super()._sanitize_page_args(page, page_size)

    def delete_headless(self, pk: Any) -> Any:
        return self._domain_guard(super().delete_headless, pk)
