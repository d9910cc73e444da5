"""The simulated acquirer's tokenization without Flask: a WSGI layer in front of the app that
answers a card form's JSON ``POST /sim-acquirer/v1/tokens`` of a valid card with its token in
one INSERT. The acquirer is a third party whose servers do this work in real life; served by
ours in the embedded default and the benchmarks, each token cost a request's full Flask work on
the shop's own threads (bench/onsale.py --burst: 500 buyers tokenize before they hold).
Anything else goes to the app unchanged, which answers it as before: a card with a wrong field
(422, in the request's language), a form post with its ``return_url`` (303), malformed or
oversized bodies, a NUL character, and a token the database failed to store."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from app import json_body
from app.sim_acquirer.api import CardError, store_token, validated
from app.views.fast_path import FastPath
from app.views.guards import KB


class TokenFastPath(FastPath):
    path = "/sim-acquirer/v1/tokens"
    endpoint = "sim_acquirer.create_token"
    max_body = 4 * KB  # the acquirer's body limit (app/views/guards.py)
    needs_token = False

    def answer(self, token: str, body: bytes, environ: dict[str, Any]) -> tuple[str, bytes] | None:
        content_type = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json" or b"\\u0000" in body:
            return None
        try:
            payload = json_body.loads(body)
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        try:
            card = validated(payload)
        except CardError:
            return None  # the app names the field, in the reader's language
        try:
            stored = store_token(self.autocommit_engine(), card)
        except SQLAlchemyError:
            return None  # the app answers it (503 while the database is away)
        return "201 CREATED", json.dumps(stored).encode()


def install(app: Flask) -> None:
    TokenFastPath.install(app)
