"""The venue's time: wall-clock times in an event's zone to UTC and back, across Brazil's zones
and a zone with daylight saving."""

from __future__ import annotations

import datetime as dt

import pytest

from app.models.local_time import (
    NonexistentLocalTime,
    UnknownTimezone,
    format_local,
    has_offset,
    iso_local,
    local_naive,
    to_utc,
    zone,
)

NIGHT = dt.datetime(2026, 12, 26, 21, 0)


@pytest.mark.parametrize(
    ("timezone", "utc", "iso", "shown"),
    [
        ("America/Sao_Paulo", dt.datetime(2026, 12, 27, 0, 0), "2026-12-26T21:00:00-03:00",
         "26/12/2026 21:00 BRT"),
        ("America/Manaus", dt.datetime(2026, 12, 27, 1, 0), "2026-12-26T21:00:00-04:00",
         "26/12/2026 21:00 AMT"),
        ("America/Rio_Branco", dt.datetime(2026, 12, 27, 2, 0), "2026-12-26T21:00:00-05:00",
         "26/12/2026 21:00 ACT"),
        ("America/Noronha", dt.datetime(2026, 12, 26, 23, 0), "2026-12-26T21:00:00-02:00",
         "26/12/2026 21:00 -0200"),
    ],
)  # fmt: skip
def test_a_wall_clock_time_in_each_brazilian_zone(timezone, utc, iso, shown):
    assert to_utc(NIGHT, timezone) == utc
    assert local_naive(utc, timezone) == NIGHT  # a form shows back what was typed
    assert iso_local(utc, timezone) == iso
    assert format_local(utc, timezone, "pt_BR") == shown


def test_english_readers_get_their_own_order_and_the_offset():
    assert format_local(dt.datetime(2026, 12, 27, 0, 0), "America/Sao_Paulo", "en") == (
        "12/26/2026 9:00 PM -0300"
    )


def test_daylight_saving_moves_the_offset_and_skips_an_hour():
    # Lisbon: UTC in winter, UTC+1 in summer (clocks forward at 01:00 on 2027-03-28).
    assert to_utc(dt.datetime(2027, 1, 10, 21, 0), "Europe/Lisbon") == dt.datetime(2027, 1, 10, 21)
    assert to_utc(dt.datetime(2027, 7, 10, 21, 0), "Europe/Lisbon") == dt.datetime(2027, 7, 10, 20)
    assert iso_local(dt.datetime(2027, 7, 10, 20), "Europe/Lisbon") == "2027-07-10T21:00:00+01:00"
    with pytest.raises(NonexistentLocalTime) as refused:
        to_utc(dt.datetime(2027, 3, 28, 1, 30), "Europe/Lisbon", field="starts_at")
    assert refused.value.field == "starts_at"
    # Clocks back at 02:00 on 2027-10-31: 01:30 happens twice; the first is taken.
    assert to_utc(dt.datetime(2027, 10, 31, 1, 30), "Europe/Lisbon") == dt.datetime(
        2027, 10, 31, 0, 30
    )


def test_a_time_with_an_offset_is_that_instant_whatever_the_zone():
    given = dt.datetime(2026, 12, 26, 21, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
    assert to_utc(given, "America/Manaus") == dt.datetime(2026, 12, 27, 0, 0)


def test_an_unknown_zone_is_refused_by_name():
    with pytest.raises(UnknownTimezone):
        zone("America/Atlantis")


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("2026-12-26T21:00:00-03:00", True), ("2026-12-26T21:00-0300", True),
        ("2026-12-26T21:00:00Z", True), ("2026-12-26T21:00:00+01", True),
        ("2026-12-26T21:00:00", False), ("2026-12-26", False), ("2026-12-26T21:00", False),
    ],
)  # fmt: skip
def test_has_offset(text, offset):
    assert has_offset(text) is offset


def test_an_api_time_not_of_an_event_is_utc_with_its_offset():
    from app.models.local_time import iso_utc

    assert iso_utc(dt.datetime(2026, 12, 27, 0, 0)) == "2026-12-27T00:00:00+00:00"
    assert iso_utc(None) is None
