"""Who scans: a gate device (by its token) or a gate user (by a login JWT), with the events it
may scan.

The credentials are cached in Redis (devices for ``DEVICE_CACHE_SECONDS``, and those of an armed
event's devices and staff when it is armed), so a scan of an armed event is answered with the
database down. A revoked device is refused at once through a set of revoked token hashes,
checked in the same round trip as the cache; an edited device or gate user has its cached
credentials dropped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import redis
from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from app.models import Event, GateAssignment, GateDevice, PartnerUser, token_hash
from app.services.checkin.errors import NotAuthorized, unavailable_without_database
from app.services.checkin.redis_keys import (
    REVOKED_DEVICES_KEY,
    device_key,
    redis_client,
    user_key,
)
from app.services.scoping import role_names

log = logging.getLogger(__name__)

#: Cached device credentials expire (and are re-cached from the database) after this long.
DEVICE_CACHE_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Scanner:
    """A gate device or a gate user, with the events it may scan."""

    partner_id: int
    event_ids: frozenset[int]
    device_id: int | None = None
    user_id: int | None = None
    # A gate user's session epoch: its tokens of an older one are refused (accounts.py).
    epoch: int = 0

    def scoped(self, nonce: str) -> str:
        """A nonce is the scanner's own: two devices may well count alike."""
        owner = f"d{self.device_id}" if self.device_id is not None else f"u{self.user_id}"
        return f"{owner}:{nonce}"

    def to_json(self) -> str:
        return json.dumps(
            {
                "partner_id": self.partner_id,
                "event_ids": sorted(self.event_ids),
                "device_id": self.device_id,
                "user_id": self.user_id,
                "epoch": self.epoch,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> Scanner:
        data = json.loads(raw)
        return cls(
            partner_id=data["partner_id"],
            event_ids=frozenset(data["event_ids"]),
            device_id=data.get("device_id"),
            user_id=data.get("user_id"),
            epoch=data.get("epoch", 0),
        )


def scanner_for_token(session: Session, token: str) -> Scanner:
    """The scanner a bearer token stands for: a gate device's token, or a gate user's (or partner
    user's) JWT. Answered from Redis when cached there, so it works with the database down."""
    token = (token or "").strip()
    if not token:
        raise NotAuthorized(gettext("Send a device token or a gate staff login token."))
    if token.count(".") == 2:
        return _scanner_for_jwt(session, token)
    digest = token_hash(token)
    cache = redis_client()
    if cache is not None:
        try:
            pipe = cache.pipeline(transaction=False)
            pipe.get(device_key(digest))
            pipe.sismember(REVOKED_DEVICES_KEY, digest)
            cached, revoked = pipe.execute()
        except redis.RedisError:
            cached, revoked = None, False
        if revoked:
            raise NotAuthorized(gettext("This device was revoked."), reason="device")
        if cached:
            return Scanner.from_json(cached)
    with unavailable_without_database(session):
        device = session.scalar(
            select(GateDevice)
            .where(GateDevice.token_hash == digest)
            .options(joinedload(GateDevice.events))
        )
    if device is None or not device.is_active:
        raise NotAuthorized(
            gettext("This device is not registered or was revoked."), reason="device"
        )
    scanner = device_scanner(device)
    cache_scanner(device_key(digest), scanner, ttl=DEVICE_CACHE_SECONDS)
    return scanner


def _scanner_for_jwt(session: Session, token: str) -> Scanner:
    from flask_jwt_extended import decode_token

    try:
        claims = decode_token(token)
        if claims.get("type") != "access":
            raise ValueError("not an access token")
        user_id = int(claims["sub"])
    except Exception as exc:  # noqa: BLE001 - expired, forged or malformed: all refused
        raise NotAuthorized(
            gettext("This login has expired or is not valid: log in again.")
        ) from exc
    scanner = _staff_scanner_cached(session, user_id)
    if claims.get("epoch", 0) != scanner.epoch:
        raise NotAuthorized(gettext("This login has ended (password changed?): log in again."))
    return scanner


def _staff_scanner_cached(session: Session, user_id: int) -> Scanner:
    cache = redis_client()
    if cache is not None:
        try:
            cached = cache.get(user_key(user_id))
        except redis.RedisError:
            cached = None
        if cached:
            return Scanner.from_json(cached)
    with unavailable_without_database(session):
        scanner = staff_scanner(session, user_id)
    cache_scanner(user_key(user_id), scanner, ttl=12 * 3600)
    return scanner


def device_scanner(device: GateDevice) -> Scanner:
    return Scanner(
        partner_id=device.partner_id,
        event_ids=frozenset(e.id for e in device.events),
        device_id=device.id,
    )


def staff_scanner(session: Session, user_id: int) -> Scanner:
    """A gate user scans the events it is assigned to; a partner user all its partner's events."""
    user = session.get(PartnerUser, user_id)
    if user is None or not user.active or user.partner_id is None:
        raise NotAuthorized(gettext("Only a partner's gate staff can scan tickets."))
    roles = role_names(user)
    if "Partner" in roles:
        event_ids = session.scalars(select(Event.id).where(Event.partner_id == user.partner_id))
    elif "Gate" in roles:
        event_ids = session.scalars(
            select(GateAssignment.event_id)
            .join(Event, Event.id == GateAssignment.event_id)
            .where(GateAssignment.user_id == user_id, Event.partner_id == user.partner_id)
        )
    else:
        raise NotAuthorized(gettext("Only a partner's gate staff can scan tickets."))
    return Scanner(
        partner_id=user.partner_id,
        event_ids=frozenset(event_ids),
        user_id=user_id,
        epoch=user.session_epoch,
    )


def cache_scanner(key: str, scanner: Scanner, ttl: int | None) -> None:
    cache = redis_client()
    if cache is None:
        return
    try:
        cache.set(key, scanner.to_json(), ex=ttl)
    except redis.RedisError:
        log.warning("could not cache a scanner in Redis", exc_info=True)


def forget_scanner(key: str) -> None:
    cache = redis_client()
    if cache is None:
        return
    try:
        cache.delete(key)
    except redis.RedisError:
        log.error("could not drop cached gate credentials %s from Redis", key)


def refuse_device(digest: str) -> None:
    """Refuse a device at once in Redis; if Redis is unreachable now, the next arming run (every
    few minutes) does it, and cached credentials expire within DEVICE_CACHE_SECONDS anyway."""
    cache = redis_client()
    if cache is None:
        return
    try:
        pipe = cache.pipeline(transaction=False)
        pipe.sadd(REVOKED_DEVICES_KEY, digest)
        pipe.delete(device_key(digest))
        pipe.execute()
    except redis.RedisError:
        log.error("could not refuse a revoked device in Redis; the next arming run will")


def device_changed(device: GateDevice) -> None:
    """Drop the cached credentials of an edited device (its events may have changed)."""
    forget_scanner(device_key(device.token_hash))


def staff_changed(user_id: int) -> None:
    """Drop a gate user's cached events (assignments or the account changed)."""
    forget_scanner(user_key(user_id))
