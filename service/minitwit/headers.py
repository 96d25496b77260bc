"""What a browser may do with MiniTwit's answers: security headers, and integrity hashes for the pages' files.

The app sets every header its pages and the API need, so they hold without Traefik too (the
tests, a local gunicorn) and the app's own tests pin them. Traefik adds what belongs to the edge:
HSTS, which only means something on the TLS it terminates, and the removal of gunicorn's
``Server`` header (traefik/dynamic/middlewares.yml). Traefik's headers middleware overwrites a
header the app also sets, so the values both set are the same; tests/app/test_security_headers.py
compares them. See docs/security.md.
"""

import base64
import hashlib
import os
from functools import lru_cache

from flask import Flask
from flask import Response
from flask import current_app

from .errors import wants_json

GRAVATAR = "https://www.gravatar.com"

# The pages: scripts, styles and images from the site itself, avatars from Gravatar; no inline
# script or style, no plugins, no frames (in either direction), forms post only to the site.
# connect-src: no page script fetches anything today; same-origin requests are what a page's own
# forms can send anyway, and the browser tests call the API from inside a page.
PAGE_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src 'self' {GRAVATAR}",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
# JSON is never a document: nothing may load from it, nothing may frame it.
API_POLICY = "default-src 'none'; frame-ancestors 'none'"

# Powerful features no MiniTwit page uses, denied to the page and any frame. Only features every
# current Chromium recognises: an unknown name is a console error on every page.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)

# On every answer, with the very values Traefik's security-headers middleware sets for every service.
EDGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": PERMISSIONS_POLICY,
}
# The web UI (pages, their files, redirects and error pages). same-origin for both cross-origin
# policies: no other site's window keeps a handle on ours, no other site embeds our files.
PAGE_HEADERS = {
    **EDGE_HEADERS,
    "Content-Security-Policy": PAGE_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# Everything under the API prefix: JSON for the simulator, answers that no cache may keep.
API_HEADERS = {
    **EDGE_HEADERS,
    "Content-Security-Policy": API_POLICY,
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def add_security_headers(response: Response) -> Response:
    """Give the answer the API's or the pages' headers; a view that set one itself keeps its own."""
    for name, value in (API_HEADERS if wants_json() else PAGE_HEADERS).items():
        response.headers.setdefault(name, value)
    return response


def static_integrity(filename: str) -> str:
    """The Subresource Integrity value of a file in static/, for the tag that loads it."""
    path = os.path.join(current_app.static_folder or "", filename)
    return file_integrity(path, os.stat(path).st_mtime_ns)


@lru_cache(maxsize=16)
def file_integrity(path: str, mtime_ns: int) -> str:
    """``sha384-<base64>`` of a file's content; cached per modification time, so an edit counts."""
    with open(path, "rb") as file:
        digest = hashlib.sha384(file.read()).digest()
    return "sha384-" + base64.b64encode(digest).decode()


def init_app(app: Flask) -> None:
    """Add the headers to every answer, and ``static_integrity`` to the templates."""
    app.after_request(add_security_headers)
    app.jinja_env.globals["static_integrity"] = static_integrity
