"""Domain errors. Each carries the HTTP status a view should answer with."""

from __future__ import annotations


class DomainError(Exception):
    """A business rule refused the operation; the message is shown to the user."""

    status = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    """The row does not exist, or belongs to another partner (we do not say which)."""

    status = 404


class Conflict(DomainError):
    """The row's state forbids the change (sold spot, event with sales, ...)."""

    status = 409


class Forbidden(DomainError):
    """The actor may not do this (for example a suspended partner publishing)."""

    status = 403
