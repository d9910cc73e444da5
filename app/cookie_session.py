"""Flask's signed-cookie sessions, opened without building their signer when the request brings
no session cookie, as every API call with a bearer token does: Flask builds the signer (an
itsdangerous serializer over the secret keys) before it looks for the cookie, 3 % of a
purchase's CPU in the on-sale benchmark (bench/onsale.py). A request with the cookie is read
exactly as Flask reads it."""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface


class CookieSessionInterface(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()  # what Flask answers for a request without the cookie
        return super().open_session(app, request)


def install(app: Flask) -> None:
    app.session_interface = CookieSessionInterface()
