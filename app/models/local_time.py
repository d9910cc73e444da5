"""The venue's time: every event has an IANA time zone; its times are stored as naive UTC (as
every timestamp column is) and entered, shown and sent in that zone.

One place for the conversions, so that a time never shifts on a round trip through a form (one
of pretix's long-open bugs): a local wall-clock time becomes UTC by ``to_utc`` (refusing a time
the clocks skip, taking the first of a time they repeat), UTC becomes local by ``to_local``,
and people read ``format_local`` ("26/12/2026 21:00 BRT"), programs ``iso_local``
("2026-12-26T21:00:00-03:00").
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from typing import Any

from babel.dates import format_datetime
from flask_babel import gettext

from app.i18n import current_locale
from app.models.errors import DomainError

DEFAULT_TIMEZONE = "America/Sao_Paulo"
# Brazil's zones first in pickers (Fernando de Noronha, Brasília, Amazonas, Acre); the rest after.
BRAZIL_TIMEZONES = (
    ("America/Sao_Paulo", "Brasília (São Paulo, Rio, Belo Horizonte, Salvador, Recife…)"),
    ("America/Manaus", "Amazonas (Manaus)"),
    ("America/Cuiaba", "Mato Grosso (Cuiabá)"),
    ("America/Campo_Grande", "Mato Grosso do Sul (Campo Grande)"),
    ("America/Porto_Velho", "Rondônia (Porto Velho)"),
    ("America/Boa_Vista", "Roraima (Boa Vista)"),
    ("America/Rio_Branco", "Acre (Rio Branco)"),
    ("America/Noronha", "Fernando de Noronha"),
    ("America/Belem", "Pará (Belém)"),
    ("America/Fortaleza", "Ceará (Fortaleza)"),
)


class UnknownTimezone(DomainError):
    code = "unknown_timezone"


class NonexistentLocalTime(DomainError):
    code = "nonexistent_local_time"


@functools.cache
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name``; UnknownTimezone when there is none."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise UnknownTimezone(
            gettext(
                "%(name)s is not a time zone: use an IANA name such as America/Sao_Paulo.",
                name=repr(name),
            ),
            field="timezone",
        ) from exc


def all_timezones() -> list[tuple[str, str]]:
    """(value, label) for a picker: Brazil's zones first, then every other IANA zone."""
    ours = [name for name, _ in BRAZIL_TIMEZONES]
    others = sorted(zoneinfo.available_timezones() - set(ours))
    return list(BRAZIL_TIMEZONES) + [(name, name.replace("_", " ")) for name in others]


def to_utc(local: dt.datetime, timezone: str, *, field: str | None = None) -> dt.datetime:
    """The naive UTC of the wall-clock time ``local`` in ``timezone`` (an aware ``local`` is
    converted as it is). A time the clocks skip (spring forward) does not exist there:
    NonexistentLocalTime naming ``field``; a time they repeat (fall back) is its first."""
    if local.tzinfo is not None:
        return local.astimezone(dt.UTC).replace(tzinfo=None)
    place = zone(timezone)
    first = local.replace(tzinfo=place, fold=0)
    utc = first.astimezone(dt.UTC)
    if utc.astimezone(place).replace(tzinfo=None) != local:
        raise NonexistentLocalTime(
            gettext(
                "%(time)s does not exist in %(timezone)s: the clocks skip it "
                "(daylight saving). Choose another time.",
                time=format(local, "%d/%m/%Y %H:%M"),
                timezone=timezone,
            ),
            field=field,
        )
    return utc.replace(tzinfo=None)


def to_local(utc: dt.datetime, timezone: str) -> dt.datetime:
    """The aware local time of the naive UTC ``utc`` in ``timezone``."""
    return utc.replace(tzinfo=dt.UTC).astimezone(zone(timezone))


def local_naive(utc: dt.datetime | None, timezone: str) -> dt.datetime | None:
    """The wall-clock time (naive) a form shows for the naive UTC ``utc``."""
    return None if utc is None else to_local(utc, timezone).replace(tzinfo=None)


def iso_local(utc: dt.datetime | None, timezone: str) -> str | None:
    """ISO 8601 with the zone's offset at that moment: "2026-12-26T21:00:00-03:00"."""
    return None if utc is None else to_local(utc, timezone).isoformat()


def iso_utc(utc: dt.datetime | None) -> str | None:
    """A stored (naive UTC) time for an API, with its offset: "2026-12-27T00:00:00+00:00"."""
    return None if utc is None else utc.replace(tzinfo=dt.UTC).isoformat()


def format_local(
    utc: dt.datetime | None, timezone: str, locale: str | None = None, *, seconds: bool = False
) -> str:
    """What a person reads: "26/12/2026 21:00 BRT" (pt-BR), "12/26/2026 9:00 PM -0300" (en);
    in the reader's locale (app/i18n.py) unless one is given."""
    if utc is None:
        return ""
    locale = locale or current_locale()
    moment = to_local(utc, timezone)
    if str(locale).startswith("pt"):
        pattern = "dd/MM/yyyy HH:mm:ss z" if seconds else "dd/MM/yyyy HH:mm z"
    else:
        pattern = "MM/dd/yyyy h:mm:ss a z" if seconds else "MM/dd/yyyy h:mm a z"
    return format_datetime(moment, pattern, tzinfo=moment.tzinfo, locale=locale)


_OFFSET = re.compile(r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")


def has_offset(text: str) -> bool:
    """Whether an ISO 8601 time ends with a UTC offset or Z ("...T21:00-03:00")."""
    return "T" in text.upper() and bool(_OFFSET.search(text.strip()))


class LocalTime:
    """A read-only attribute of an event: one of its times as people read it, in the venue's
    zone (for list and show columns)."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __get__(self, event: Any, owner: type | None = None) -> Any:
        if event is None:
            return self
        return format_local(getattr(event, self.field), event.zone_name, current_locale())
