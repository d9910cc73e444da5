"""Domain errors. Each carries the HTTP status and the machine-readable code an API answers with."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A business rule refused the operation; the message is shown to the user."""

    status = 422
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body | self.extra


class InvalidRequest(DomainError):
    """A request malformed as such (not a rule refused): a field of the wrong kind or shape."""

    status = 400
    code = "invalid_request"


class NotFound(DomainError):
    """The row does not exist, or belongs to another partner or customer (we do not say which)."""

    status = 404
    code = "not_found"


class Conflict(DomainError):
    """The row's state forbids the change (sold spot, event with sales, ...)."""

    status = 409
    code = "conflict"


class Forbidden(DomainError):
    """The actor may not do this (for example a suspended partner publishing)."""

    status = 403
    code = "forbidden"


class Busy(DomainError):
    """Someone else holds the lock: nothing changed, try again in a moment."""

    status = 503
    code = "busy"
