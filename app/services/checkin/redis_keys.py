"""Where check-in keeps things in Redis: the connection, one key per thing, the Lua scripts.

Everything lives under ``ck:``. Per armed event: its doors and public key (``ck:ev:<id>``, a
hash), revoked tickets (``ck:rv:<id>``, a set), ticket details (``ck:tk:<id>``, a hash) and
entries (``ck:en:<id>``, a hash of ticket id to ``entry_value``). Per scanner: cached
credentials (``ck:dev:<token hash>``, ``ck:usr:<user id>``) and the revoked devices
(``ck:dev:revoked``). Per scan: its request's fingerprint and answer under its scoped nonce
(``ck:n:<nonce>``, ``nonce_value``), and the scan log queued for the database (``ck:log``).
The Lua scripts (``*.lua`` beside this module) use the same layout.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import redis
from flask import current_app

from app.services.checkin.rules import FirstAnswer

#: A scan's answer is kept this long under its nonce, so a retry gets the same answer.
NONCE_TTL_SECONDS = 3 * 24 * 3600
#: Scans queued for the database (``scan_log.flush_scan_log`` writes them).
LOG_KEY = "ck:log"
#: Revoked device tokens (hashes): checked with the cached credentials, in the same round trip.
REVOKED_DEVICES_KEY = "ck:dev:revoked"

_CLIENTS: dict[str, redis.Redis] = {}
_SCRIPTS: dict[tuple[int, str], Any] = {}


def redis_for(url: str) -> redis.Redis:
    """One connection pool per Redis URL and process, with the gate's short timeouts (used by
    the fast path too, which runs outside an app context)."""
    client = _CLIENTS.get(url)
    if client is None:
        client = redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True
        )
        _CLIENTS[url] = client
    return client


def redis_client() -> redis.Redis | None:
    """The app's Redis, or None on the embedded default (no Redis)."""
    url = current_app.config.get("REDIS_URL")
    return redis_for(url) if url else None


def script(client: redis.Redis, name: str) -> Any:
    """The package's Lua script ``<name>.lua`` bound to a client, read and hashed once per
    process rather than on every scan."""
    key = (id(client), name)
    bound = _SCRIPTS.get(key)
    if bound is None:
        text = resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
        bound = _SCRIPTS[key] = client.register_script(text)
    return bound


def event_key(event_id: int) -> str:
    return f"ck:ev:{event_id}"


def entries_key(event_id: int) -> str:
    return f"ck:en:{event_id}"


def revoked_key(event_id: int) -> str:
    return f"ck:rv:{event_id}"


def tickets_key(event_id: int) -> str:
    return f"ck:tk:{event_id}"


def nonce_key(nonce: str) -> str:
    return f"ck:n:{nonce}"


def nonce_value(fingerprint: str, answer: str) -> str:
    """A scan's first answer as kept under its nonce: the request's fingerprint (64 hex digits,
    ``rules.fingerprint``) followed by the answer's JSON."""
    return fingerprint + answer


def read_nonce_value(raw: str) -> FirstAnswer:
    if raw.startswith("{"):  # an answer kept before fingerprints were
        return FirstAnswer(None, json.loads(raw))
    return FirstAnswer(raw[:64], json.loads(raw[64:]))


def device_key(digest: str) -> str:
    return f"ck:dev:{digest}"


def user_key(user_id: int) -> str:
    return f"ck:usr:{user_id}"


def entry_value(state: str, first_at: str, gate: str, last_nonce: str = "") -> str:
    """A ticket's entry as the scripts keep it: ``<in|out>|<first time>|<last nonce>|<first
    gate>``; the last nonce is that of the scan that made the last change, so its retry answers
    "valid" again."""
    return f"{state}|{first_at}|{last_nonce}|{gate}"


def read_entry(raw: str) -> tuple[str, str, str]:
    """(state, first time, first gate) of an ``entry_value``."""
    state, first_at, _, gate = raw.split("|", 3)
    return state, first_at, gate
