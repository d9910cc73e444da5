"""The fast path: a device's scan of an armed event answered in one Redis round trip and one
database transaction, for the WSGI layer in front of the app (``app/views/checkin_fast.py``),
without Flask.

Python parses the request and verifies the code's signature (with the armed event's public key,
cached a few seconds per process); one Lua script (``fast_scan.lua``) does the rest of
``scanning.evaluate`` with the Redis store, in the same order, keeps the answer under its nonce
and queues the scan log. The scan is then written to the database, which may overrule an
admission, before it is answered (``scan_log.write_through``; Redis's answer stands while the
database is unreachable). Anything it cannot answer (a staff login, a malformed request, an
unknown or revoked device, an event not armed yet, a nonce sent with another scan) goes to the
full path.
"""

from __future__ import annotations

import json
import time

import redis
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine

from app import json_body, metrics
from app.models import DomainError, token_hash
from app.models.base import utcnow
from app.models.codes import InvalidCode, read_claim, unb64
from app.services.checkin.redis_keys import (
    LOG_KEY,
    NONCE_TTL_SECONDS,
    REVOKED_DEVICES_KEY,
    device_key,
    entries_key,
    event_key,
    revoked_key,
    script,
    tickets_key,
)
from app.services.checkin.rules import fingerprint, iso, parse_scan
from app.services.checkin.scan_log import write_through

_FAST_KEYS: dict[int, tuple[Ed25519PublicKey, float]] = {}
_FAST_KEY_SECONDS = 5.0


def forget_fast_keys() -> None:
    """Drop the cached public keys (tests reuse event ids with new keys)."""
    _FAST_KEYS.clear()


def _fast_public_key(client: redis.Redis, event_id: int) -> Ed25519PublicKey | None:
    """An armed event's public key (keys never change: cached a few seconds per process, so a
    disarmed event is noticed soon)."""
    cached = _FAST_KEYS.get(event_id)
    now = time.monotonic()
    if cached and now - cached[1] < _FAST_KEY_SECONDS:
        return cached[0]
    raw = client.hget(event_key(event_id), "public_key")
    if raw is None:
        _FAST_KEYS.pop(event_id, None)
        return None
    key = Ed25519PublicKey.from_public_bytes(unb64(raw))
    _FAST_KEYS[event_id] = (key, now)
    return key


def fast_scan(
    client: redis.Redis, token: str, body: bytes, database: Engine | None = None
) -> bytes | None:
    """Answer a device's scan of an armed event in one Redis round trip, written to
    ``database`` before it is answered (None: left to the queue's flush), or None when the full
    path must answer (a staff login, a malformed request, an unknown device, an event not armed
    yet, a nonce sent with another scan)."""
    if not token or token.count(".") == 2:
        return None
    try:
        request = parse_scan(json_body.loads(body))  # what it refuses, the app answers
    except (ValueError, DomainError):
        return None
    event_id = ticket_id = 0
    label = ""
    try:
        claim, signed, signature = read_claim(request.code)
    except InvalidCode:
        verdict = "malformed"
    else:
        key = _fast_public_key(client, claim.event_id)
        if key is None:
            return None
        event_id, ticket_id, label = claim.event_id, claim.ticket_id, claim.label
        try:
            key.verify(signature, signed)
            verdict = "ok"
        except InvalidSignature:
            verdict = "bad_signature"
    now = utcnow()
    digest = token_hash(token)
    wanted = fingerprint(request)
    reply = script(client, "fast_scan")(
        keys=[
            device_key(digest), REVOKED_DEVICES_KEY, event_key(event_id),
            revoked_key(event_id), tickets_key(event_id), entries_key(event_id), LOG_KEY,
        ],
        args=[
            verdict, event_id, ticket_id, label, request.direction, iso(request.scanned_at),
            request.gate, iso(now), request.event_id or "", request.scanned_at.isoformat(),
            now.isoformat(), NONCE_TTL_SECONDS, request.nonce, digest, wanted,
        ],
    )  # fmt: skip
    if reply[0] in ("noauth", "reused"):  # not cached or revoked; another scan's nonce
        return None
    if reply[0] == "old":  # a retry's first answer (counted when first answered)
        return reply[1].encode()
    if database is None:
        metrics.count_scan(reply[2], "fast")
        return reply[1].encode()
    answer = json.loads(reply[1])
    first = write_through(database, client, json.loads(reply[3]), answer, wanted)
    if first.fingerprint != wanted:  # the database logged this nonce for another scan
        return None  # the full path answers nonce_reused
    if first.mine:
        metrics.count_scan(first.answer["result"], "fast")
    return reply[1].encode() if first.answer is answer else json.dumps(first.answer).encode()
