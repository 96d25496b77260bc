"""The signed session cookie, opened only where it is used: the web pages.

The simulator API authenticates every request with Basic credentials, and the probes with
nothing, so neither reads or writes the session. Flask would still build a signing serializer
and parse the cookies for each of their requests, which is 6-7% of an API request's CPU in
process (docs/performance.md). There they get Flask's null session: empty, never saved, and an
error if code ever tries to store something in it.
"""

from flask import Flask
from flask import Request
from flask.sessions import SecureCookieSessionInterface
from flask.sessions import SessionMixin


class PageSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, except for requests whose path starts with a cookieless prefix."""

    def __init__(self, cookieless_prefixes: tuple[str, ...]):
        self.cookieless_prefixes = cookieless_prefixes

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        """The null session on a cookieless path, else the signed cookie's."""
        if request.path.startswith(self.cookieless_prefixes):
            return self.null_session_class()
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    """Open no session for the API (``API_PREFIX/...``) and the probes."""
    app.session_interface = PageSessionInterface((app.config["API_PREFIX"] + "/", "/health", "/ready"))
