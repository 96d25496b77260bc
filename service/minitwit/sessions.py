"""The signed session cookie, without its cost for requests that send no cookies.

Flask builds a signing serializer and parses the cookies for every request before it can tell
that there is no session cookie. The simulator and the probes never send cookies, and that
work was 1-10% of an API request's CPU in process (docs/performance.md). A request without a
``Cookie`` header gets at once what Flask would have given it: a new, empty session that
sign-in can still fill. Every other request goes through Flask's own code.
"""

from flask import Flask
from flask import Request
from flask.sessions import SecureCookieSession
from flask.sessions import SecureCookieSessionInterface


class CookieSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with a shortcut for requests that carry no cookies."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """An empty session when the request sends no cookies at all, else Flask's.

        Without a secret key Flask's own code runs, so a session stays unavailable as Flask makes it.
        """
        if "HTTP_COOKIE" not in request.environ and app.secret_key:
            return self.session_class()
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    """Use the shortcut for every request."""
    app.session_interface = CookieSessionInterface()
