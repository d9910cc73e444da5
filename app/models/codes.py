"""Signed ticket codes: a compact payload signed with the event's Ed25519 key.

Any scanner holding the event's public key tells a genuine code from a forged one without a
database. Layout (before base64url): version (1 byte) | event id (4) | ticket id (8) | label
length (1) | label (UTF-8, the seat as printed), then the 64-byte signature over all of that.
"""

from __future__ import annotations

import base64
import functools
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

VERSION = 1
_HEADER = struct.Struct(">BIQB")
_SIGNATURE_BYTES = 64
MAX_LABEL_BYTES = 60


class InvalidCode(ValueError):
    """Malformed, or not signed by the key it was checked with."""


@dataclass(frozen=True)
class TicketClaim:
    event_id: int
    ticket_id: int
    label: str


def new_private_key() -> str:
    """A fresh Ed25519 private key as base64url of its 32 raw bytes."""
    return _b64(Ed25519PrivateKey.generate().private_bytes_raw())


def public_key_of(private_key: str) -> str:
    key = Ed25519PrivateKey.from_private_bytes(unb64(private_key))
    return _b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def sign_ticket(private_key: str, claim: TicketClaim) -> str:
    # Cut at a character boundary: half a UTF-8 character would make the code unreadable.
    label = claim.label.encode()[:MAX_LABEL_BYTES].decode("utf-8", "ignore").encode()
    payload = _HEADER.pack(VERSION, claim.event_id, claim.ticket_id, len(label)) + label
    signature = _private_key(private_key).sign(payload)
    return _b64(payload + signature)


def read_claim(code: str) -> tuple[TicketClaim, bytes, bytes]:
    """Parse a code without verifying it: (claim, signed payload, signature)."""
    try:
        raw = unb64(code.strip())
        version, event_id, ticket_id, label_length = _HEADER.unpack_from(raw)
    except (ValueError, struct.error) as exc:
        raise InvalidCode("malformed code") from exc
    end = _HEADER.size + label_length
    if version != VERSION or len(raw) != end + _SIGNATURE_BYTES:
        raise InvalidCode("malformed code")
    try:
        label = raw[_HEADER.size : end].decode()
    except UnicodeDecodeError as exc:
        raise InvalidCode("malformed code") from exc
    return TicketClaim(event_id, ticket_id, label), raw[:end], raw[end:]


def verify_ticket(public_key: str, code: str) -> TicketClaim:
    """The claim inside ``code`` if the key's owner signed it; InvalidCode otherwise."""
    claim, payload, signature = read_claim(code)
    try:
        _public_key(public_key).verify(signature, payload)
    except (InvalidSignature, ValueError) as exc:
        raise InvalidCode("bad signature") from exc
    return claim


# Loading a key costs as much as a signature (30 us): an event's are loaded once per process.
# The cache holds what the caller holds already (the event's row, the gate's manifest).
@functools.lru_cache(maxsize=1024)
def _private_key(private_key: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(unb64(private_key))


@functools.lru_cache(maxsize=1024)
def _public_key(public_key: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(unb64(public_key))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    """base64url without padding, decoded."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
