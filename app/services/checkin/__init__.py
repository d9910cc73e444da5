"""Ticket validation at the gate (ARCHITECTURE.md, "The scan path"), one module per part:

- ``rules``: the scan rule, pure (a scan request, the doors, what a scan does to an entry).
- ``scanning``: one scan from request to logged answer, on either store.
- ``db_store`` and ``redis_store``: the two stores; ``redis_keys``: the Redis layout and the Lua
  scripts (``*.lua`` in this package); ``arming``: what an event's gates need, copied to Redis.
- ``fast_path``: a device's scan of an armed event in one Redis round trip, without Flask.
- ``scanners`` (who scans), ``devices`` (gate administration), ``manifest`` (what an offline
  gate downloads), ``scan_log`` (Redis-queued scans written to the database), ``stats`` (the
  dashboard's gate figures), ``errors``.

Callers import from those modules; the names below are re-exported for the tests.
"""

from app.services.checkin.arming import arm_due_events, arm_event, note_revoked
from app.services.checkin.devices import assign_gate_user, register_device, revoke_device
from app.services.checkin.fast_path import fast_scan, forget_fast_keys
from app.services.checkin.redis_keys import LOG_KEY, redis_client
from app.services.checkin.redis_store import RedisStore
from app.services.checkin.rules import parse_scan
from app.services.checkin.scan_log import DEAD_LETTER_KEY, flush_scan_log
from app.services.checkin.scanners import Scanner, scanner_for_token, staff_scanner
from app.services.checkin.scanning import scan

__all__ = [
    "DEAD_LETTER_KEY",
    "LOG_KEY",
    "RedisStore",
    "Scanner",
    "arm_due_events",
    "arm_event",
    "assign_gate_user",
    "fast_scan",
    "flush_scan_log",
    "forget_fast_keys",
    "note_revoked",
    "parse_scan",
    "redis_client",
    "register_device",
    "revoke_device",
    "scan",
    "scanner_for_token",
    "staff_scanner",
]
