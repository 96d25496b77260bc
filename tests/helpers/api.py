"""The simulator API: one client interface over the Flask test client and over real HTTP,
and factories that create users, messages and follows through it (black-box, same for both databases)."""

from __future__ import annotations

import json as jsonlib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from minitwit.config import DEFAULT_SIMULATOR_AUTH
from minitwit.config import basic_authorization

API_AUTH = {"Authorization": basic_authorization(DEFAULT_SIMULATOR_AUTH)}
NOT_AUTHORIZED = {
    "status": 403,
    "error_msg": "You are not authorized to use this resource!",
}


@dataclass
class ApiResponse:
    """The parts of an HTTP answer the API tests look at."""

    status_code: int
    text: str
    headers: dict

    @property
    def ok(self) -> bool:
        """True for 2xx, like ``requests.Response.ok`` in the upstream tests."""
        return 200 <= self.status_code < 300

    def json(self):
        """Decode the body as JSON."""
        return jsonlib.loads(self.text)


class FlaskApi:
    """Simulator API calls through a Flask test client under the API prefix."""

    def __init__(self, client, prefix: str = "/api"):
        self.client = client
        self.prefix = prefix

    def request(
        self,
        method,
        path,
        *,
        params=None,
        json=None,
        data=None,
        headers=None,
        auth=True,
    ):
        """Send one request; ``auth`` adds the simulator's Authorization header."""
        rv = self.client.open(
            self.prefix + path,
            method=method,
            query_string=params,
            data=_body(json, data),
            headers=_headers(headers, auth, json is not None),
        )
        return ApiResponse(rv.status_code, rv.get_data(as_text=True), dict(rv.headers))

    def get(self, path, **kwargs):
        """GET ``path``."""
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        """POST ``path``."""
        return self.request("POST", path, **kwargs)


class HttpApi(FlaskApi):
    """Simulator API calls over real HTTP(S) to a deployment, e.g. https://minitwit.test/api."""

    def __init__(self, base_url: str, ca_bundle: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None

    def request(
        self,
        method,
        path,
        *,
        params=None,
        json=None,
        data=None,
        headers=None,
        auth=True,
    ):
        """Send one request like the simulator does (``Connection: close``)."""
        url = self.base_url + urllib.parse.quote(path, safe="/%")
        if params:
            url += "?" + urllib.parse.urlencode(params)
        hdrs = _headers(headers, auth, json is not None)
        hdrs.setdefault("Connection", "close")
        req = urllib.request.Request(url, data=_body(json, data), headers=hdrs, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.context) as rv:
                return ApiResponse(rv.status, rv.read().decode(), dict(rv.headers))
        except urllib.error.HTTPError as err:
            return ApiResponse(err.code, err.read().decode(), dict(err.headers))


def _body(json, data):
    """Encode a JSON payload, or pass raw ``data`` through unchanged."""
    if json is not None:
        return jsonlib.dumps(json).encode()
    if isinstance(data, str):
        return data.encode()
    return data


def _headers(headers, auth, is_json):
    """Build request headers: JSON content type and simulator auth unless overridden."""
    result = {"Content-Type": "application/json"} if is_json else {}
    if auth:
        result.update(API_AUTH)
    result.update(headers or {})
    return result


# --- factories through the public API (black-box, same for both databases) ------------


def api_register(api, username, email=None, pwd="secret"):
    """Register ``username`` through the simulator API and assert it worked."""
    rv = api.post(
        "/register",
        json={"username": username, "email": email or f"{username}@x.org", "pwd": pwd},
    )
    assert rv.status_code == 204, rv.text
    return rv


def api_post(api, username, content):
    """Post a message as ``username`` through the simulator API."""
    rv = api.post(f"/msgs/{username}", json={"content": content})
    assert rv.status_code == 204, rv.text
    return rv


def api_follow(api, who, whom, action="follow"):
    """Make ``who`` follow (or ``action="unfollow"``) ``whom`` through the API."""
    rv = api.post(f"/fllws/{who}", json={action: whom})
    assert rv.status_code == 204, rv.text
    return rv


def basic_auth(credentials: str) -> dict:
    """Authorization header for ``user:password``."""
    return {"Authorization": basic_authorization(credentials)}
