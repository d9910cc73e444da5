"""Check-in API for gate devices and gate staff (ARCHITECTURE.md, "The scan path").

Authenticated by a device token or a gate user's JWT (``Authorization: Bearer ...``), checked by
the check-in service itself so that, for an armed event, a scan touches Redis only and keeps
working with the database down.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import g, request
from flask_appbuilder.api import BaseApi, expose, safe

from app.extensions import db
from app.services.checkin import manifest, scanning
from app.services.checkin.rules import parse_scan
from app.services.checkin.scanners import scanner_for_token
from app.views.api_input import domain_errors, json_body


def scanner_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Resolve the bearer token to a scanner (``g.scanner``) or answer 401."""

    @functools.wraps(view)
    def wrapper(self: BaseApi, *args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header[:7].lower() == "bearer " else ""
        g.scanner = scanner_for_token(db.session, token)
        return view(self, *args, **kwargs)

    return wrapper


class CheckinApi(BaseApi):
    resource_name = "checkin"
    openapi_spec_tag = "Check-in"

    @expose("/scan", methods=["POST"])
    @safe
    @domain_errors
    @scanner_required
    def scan(self) -> Any:
        """Validate a ticket at the gate.
        ---
        post:
          summary: Validate a scanned code and record the scan
          description: >
            The code's signature is verified with the event's public key before any lookup;
            the first entry is recorded atomically; a retry with the same nonce answers the
            same and records nothing new; the nonce sent with another code, gate, direction
            or event_id answers 422 nonce_reused.
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [code, gate, nonce]
                  properties:
                    code: {type: string}
                    gate: {type: string}
                    direction: {type: string, enum: [in, out], default: in}
                    nonce: {type: string, minLength: 8, maxLength: 64}
                    scanned_at: {type: string, format: date-time}
                    event_id: {type: integer, description: the event the gate is working}
          responses:
            200:
              description: >
                {"result": valid | already_used | invalid | revoked | wrong_event |
                not_valid_now, "seat", "section", "holder_name", "first_scan": {"at", "gate"}}
            401:
              description: Missing, unknown or revoked device token or login
            422:
              description: A field is missing or malformed, or the nonce is another scan's
        """
        scan_request = parse_scan(json_body())
        return self.response(200, **scanning.scan(db.session, g.scanner, scan_request))

    @expose("/offline-scans", methods=["POST"])
    @safe
    @domain_errors
    @scanner_required
    def offline_scans(self) -> Any:
        """Upload the scans a gate made without network.
        ---
        post:
          summary: Record offline scans in the order they were made
          description: >
            The first entry of a ticket is admitted; a later scan that the device also
            admitted is reported as a conflict. Idempotent by nonce; a nonce sent with
            another scan answers 422 nonce_reused, naming the scan.
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [scans]
                  properties:
                    scans:
                      type: array
                      items:
                        type: object
                        required: [code, gate, nonce, scanned_at]
                        properties:
                          code: {type: string}
                          gate: {type: string}
                          direction: {type: string, enum: [in, out]}
                          nonce: {type: string}
                          scanned_at: {type: string, format: date-time}
                          verdict: {type: string, description: what the device showed}
          responses:
            200:
              description: '{"results": [{"nonce", "result", "conflict"}]}'
            401:
              description: Missing, unknown or revoked device token or login
            422:
              description: A scan is malformed or reuses a nonce (the field names which)
        """
        results = scanning.record_offline_scans(db.session, g.scanner, json_body())
        return self.response(200, results=results)

    @expose("/events", methods=["GET"])
    @safe
    @domain_errors
    @scanner_required
    def events(self) -> Any:
        """The events this device or gate user may scan.
        ---
        get:
          summary: Events this scanner may validate
          responses:
            200:
              description: '{"events": [{"id", "name", "venue", "starts_at", "armed"}]}'
            401:
              description: Missing, unknown or revoked device token or login
        """
        return self.response(200, events=manifest.scannable_events(db.session, g.scanner))

    @expose("/events/<int:event_id>/manifest", methods=["GET"])
    @safe
    @domain_errors
    @scanner_required
    def manifest(self, event_id: int) -> Any:
        """What an offline gate needs to validate an event's tickets.
        ---
        get:
          summary: Public key, check-in window, revoked tickets and entries so far
          parameters:
          - {in: path, name: event_id, required: true, schema: {type: integer}}
          responses:
            200:
              description: The manifest
            401:
              description: Missing, unknown or revoked device token or login
            404:
              description: Not one of this scanner's events
        """
        return self.response(200, **manifest.manifest(db.session, g.scanner, event_id))
