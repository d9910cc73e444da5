"""A request without a session cookie (an API call with a bearer token) opens its session without
Flask building the cookie's signer; a browser's signed session is read as before."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.support.pages import another_client, page_sign_up


def count_signers(app: Flask, monkeypatch: Any) -> list[int]:
    built: list[int] = []
    interface = type(app.session_interface)
    original = interface.get_signing_serializer

    def counted(self: Any, flask_app: Flask) -> Any:
        built.append(1)
        return original(self, flask_app)

    monkeypatch.setattr(interface, "get_signing_serializer", counted)
    return built


def test_a_request_without_the_cookie_builds_no_signer(
    app: Flask, client: FlaskClient, monkeypatch: Any
) -> None:
    built = count_signers(app, monkeypatch)
    assert client.get("/healthz").status_code == 200
    refused = client.get("/api/v1/holds/", headers={"Authorization": "Bearer x"})
    assert refused.status_code == 422, refused.get_json()  # a token that does not decode
    assert built == []


def test_a_signed_in_browser_is_still_known_by_its_cookie(
    app: Flask, client: FlaskClient, monkeypatch: Any
) -> None:
    page_sign_up(client)
    built = count_signers(app, monkeypatch)
    assert client.get("/orders").status_code == 200  # read from the signed cookie
    assert built
    stranger = another_client(client)
    stranger.set_cookie(app.config.get("SESSION_COOKIE_NAME", "session"), "forged.value.sig")
    assert stranger.get("/orders").status_code == 302  # a bad signature is no session
