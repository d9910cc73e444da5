"""Partner scope: the one rule deciding which rows a user may see, used by views, APIs and services.

Platform staff (Admin, Finance) see everything; a partner's users (partner staff and gate staff)
see only their partner's rows; anybody else sees no partner rows at all. Models expose
``partner_scope(partner_id)`` returning the SQL condition that ties a row to a partner.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

from flask_babel import gettext
from sqlalchemy import Select, false, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.models.base import any_of
from app.models.errors import NotFound

PLATFORM_ROLES = frozenset({"Admin", "Finance"})

M = TypeVar("M")


class Actor(Protocol):
    """What the scope needs of a user: its roles and its partner membership."""

    roles: Any
    partner_id: int | None


class _Role:
    def __init__(self, name: str) -> None:
        self.name = name


class SystemActor:
    """The platform itself, acting in background tasks (refunding a cancelled event, ...)."""

    roles = (_Role("Admin"),)
    partner_id = None
    is_authenticated = True


SYSTEM = SystemActor()


def role_names(actor: Actor | None) -> set[str]:
    if actor is None or not getattr(actor, "is_authenticated", True):
        return set()
    return {role.name for role in (getattr(actor, "roles", None) or [])}


def is_platform_staff(actor: Actor | None) -> bool:
    return bool(role_names(actor) & PLATFORM_ROLES)


def scope_clause(model: type, actor: Actor | None) -> ColumnElement[bool] | None:
    """The condition limiting ``model`` to what ``actor`` may see; None means no limit."""
    if is_platform_staff(actor):
        return None
    partner_id = getattr(actor, "partner_id", None) if actor is not None else None
    if partner_id is None:
        return false()
    return model.partner_scope(partner_id)


def _pk(model: type, pk: Any) -> int:
    try:
        return int(pk)
    except (TypeError, ValueError):
        raise NotFound(gettext("%(name)s not found.", name=model.__name__)) from None


def owned_query(model: type[M], actor: Actor | None) -> Select[tuple[M]]:
    query = select(model)
    clause = scope_clause(model, actor)
    return query if clause is None else query.where(clause)


def get_owned_many(
    session: Session, model: type[M], pks: Iterable[Any], actor: Actor | None, *, lock: bool = False
) -> list[M]:
    """All rows ``pks`` of ``model`` the actor may see, locked in id order when ``lock``; NotFound
    if any is missing or foreign."""
    wanted = sorted({_pk(model, pk) for pk in pks})
    query = owned_query(model, actor).where(any_of(model.id, wanted)).order_by(model.id)
    if lock:
        query = query.with_for_update()
    rows = list(session.scalars(query))
    if len(rows) != len(wanted):
        raise NotFound(gettext("%(name)s not found.", name=model.__name__))
    return rows


def get_owned(session: Session, model: type[M], pk: Any, actor: Actor | None) -> M:
    """The row ``pk`` of ``model`` if the actor may see it; NotFound otherwise (missing or foreign
    alike, so ids of other partners' rows leak nothing)."""
    row = session.scalars(owned_query(model, actor).where(model.id == _pk(model, pk))).first()
    if row is None:
        raise NotFound(gettext("%(name)s not found.", name=model.__name__))
    return row
