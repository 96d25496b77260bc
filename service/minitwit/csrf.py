"""Cross-site request forgery protection without tokens: Fetch Metadata, then Origin.

A browser tells the server where a request comes from: every current browser sends
``Sec-Fetch-Site``, and older ones at least send ``Origin`` on POST. A state-changing
request that the browser marks as coming from another origin is refused with a 403 page.
A request with neither header comes from a non-browser client (the course's
``requests``-based UI tests, scripts), which cannot carry a victim's cookies, so it passes.
This is the algorithm of Go 1.25's ``net/http.CrossOriginProtection`` and of OWASP's
current CSRF guidance; ``SameSite=Lax`` on the session cookie is a second layer.
See docs/security.md.
"""

import logging

from flask import Flask
from flask import request
from werkzeug.exceptions import Forbidden

from . import metrics

logger = logging.getLogger("minitwit.csrf")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# The follow links are GETs that change state (the original MiniTwit's design), so they count too.
STATE_CHANGING_GETS = frozenset({"timeline.follow_user", "timeline.unfollow_user"})
# The simulator API takes JSON only, which no cross-site form can send without a CORS preflight.
EXEMPT_BLUEPRINTS = frozenset({"api", "health"})
TRUSTED_SITES = frozenset({"same-origin", "none"})  # "none": typed URL, bookmark
DEFAULT_PORTS = {"http": ":80", "https": ":443"}
CROSS_ORIGIN = (
    "This request came from another web site, so it was refused to protect your account "
    "(cross-site request forgery). Open MiniTwit itself and try again from its own pages."
)


class CrossOriginRequest(Forbidden):
    """A state-changing request from another origin: 403 with an explanation."""

    description = CROSS_ORIGIN


def own_origin() -> str:
    """The origin this request was addressed to (scheme and host as ProxyFix trusts them)."""
    scheme = request.scheme
    host = request.host.lower().removesuffix(DEFAULT_PORTS.get(scheme, ""))
    return f"{scheme}://{host}"


def cross_origin_reason(headers, origin: str) -> str | None:
    """Why the browser headers say the request is not same-origin, or None if they do not.

    ``Sec-Fetch-Site`` decides when present; without it, an ``Origin`` other than ours
    (``null`` included) refuses; with neither, the client is not a browser.
    """
    site = headers.get("Sec-Fetch-Site")
    if site is not None:
        return None if site in TRUSTED_SITES else "sec-fetch-site"
    sent_origin = headers.get("Origin")
    if sent_origin is None or sent_origin.lower() == origin:
        return None
    return "origin"


def changes_state() -> bool:
    """Tell whether this request is one a forged cross-site request could abuse."""
    if request.blueprint in EXEMPT_BLUEPRINTS:
        return False
    return request.method not in SAFE_METHODS or request.endpoint in STATE_CHANGING_GETS


def refuse_cross_origin() -> None:
    """Answer 403 to a state-changing request a browser sent from another origin."""
    if not changes_state():
        return
    reason = cross_origin_reason(request.headers, own_origin())
    if reason is None:
        return
    metrics.CROSS_ORIGIN_REFUSED.labels(reason=reason).inc()
    header = "Sec-Fetch-Site" if reason == "sec-fetch-site" else "Origin"
    logger.warning(
        "CSRF: cross-origin %s %s refused (%s: %.100s)", request.method, request.path, header, request.headers[header]
    )
    raise CrossOriginRequest()


def init_app(app: Flask) -> None:
    """Check every request before the blueprints' hooks and views (after metrics and logging start)."""
    app.before_request(refuse_cross_origin)
