"""Rate-limit storage: limits' Redis storage, in one round trip per limited request.

Flask-Limiter counts a request with one Redis call (an increment) and then, to write the
``X-RateLimit-*`` headers and ``Retry-After``, asks Redis twice more for the count and the
window's expiry. Here the increment answers both (one script), kept for the rest of the request;
outside a request, or for a key not counted in this request, the stock calls answer.

The decision to refuse still comes from the increment alone. Between the increment and the
headers another request may count too: the headers show the count as of this request's own
increment, which is what they describe.
"""

from __future__ import annotations

import time

from flask import has_request_context, request
from limits.storage import RedisStorage

# The storage URI is ``one-trip+`` followed by the Redis URL.
PREFIX = "one-trip+"
# Where a request keeps what it counted (its WSGI environ: the request's own, where flask.g
# belongs to an app context that a request may share).
_COUNTED = "bilheteria.ratelimit_counted"

_INCR_WITH_TTL = """
local amount = tonumber(ARGV[2])
local current = redis.call("incrby", KEYS[1], amount)
if tonumber(current) == amount then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("ttl", KEYS[1])}
"""


_SCHEMES = ("redis", "rediss", "redis+unix")


def storage_uri(redis_url: str) -> str:
    """The rate-limit storage for a Redis URL: this one-round-trip storage for plain Redis,
    limits' own for any other scheme (valkey, sentinel, cluster)."""
    scheme = redis_url.partition("://")[0]
    return PREFIX + redis_url if scheme in _SCHEMES else redis_url


class OneTripRedisStorage(RedisStorage):
    STORAGE_SCHEME = [PREFIX + scheme for scheme in _SCHEMES]

    def __init__(self, uri: str, **options: object) -> None:
        super().__init__(uri.removeprefix(PREFIX), **options)  # type: ignore[arg-type]

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        self.lua_incr_with_ttl = self.get_connection().register_script(_INCR_WITH_TTL)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        count, ttl = self.lua_incr_with_ttl([self.prefixed_key(key)], [expiry, amount])
        if has_request_context():
            seen = request.environ.setdefault(_COUNTED, {})
            seen[key] = (int(count), max(int(ttl), 0) + time.time())
        return int(count)

    def get(self, key: str) -> int:
        counted = _counted(key)
        return counted[0] if counted else super().get(key)

    def get_expiry(self, key: str) -> float:
        counted = _counted(key)
        return counted[1] if counted else super().get_expiry(key)


def _counted(key: str) -> tuple[int, float] | None:
    """This request's own count and expiry of ``key``, if it counted it."""
    if not has_request_context():
        return None
    return request.environ.get(_COUNTED, {}).get(key)
