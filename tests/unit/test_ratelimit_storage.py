"""app/ratelimit.py: which storage a Redis URL gets."""

from __future__ import annotations

import pytest

from app import ratelimit


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "one-trip+redis://127.0.0.1:6379/0"),
        ("rediss://cache.example:6380/1", "one-trip+rediss://cache.example:6380/1"),
        ("redis+unix:///run/redis.sock", "one-trip+redis+unix:///run/redis.sock"),
        # Other schemes keep limits' own storage (its one-trip subclass speaks plain Redis).
        ("valkey://127.0.0.1:6379", "valkey://127.0.0.1:6379"),
        ("redis+sentinel://s1:26379/mymaster", "redis+sentinel://s1:26379/mymaster"),
    ],
)
def test_plain_redis_urls_get_the_one_trip_storage(url: str, expected: str) -> None:
    assert ratelimit.storage_uri(url) == expected


def test_the_one_trip_schemes_are_registered_with_limits() -> None:
    from limits.storage import SCHEMES

    for scheme in ("redis", "rediss", "redis+unix"):
        assert SCHEMES["one-trip+" + scheme] is ratelimit.OneTripRedisStorage
