"""The upstream test cases, as the contract pins them.

* The nine simulator API cases of the course's ``minitwit_sim_api_test.py``. They
  run on the ``sim_api`` fixture: the app on SQLite and PostgreSQL, or, when
  ``MINITWIT_API_URL`` is set (e.g. ``https://minitwit.test/api``, with
  ``MINITWIT_CA_BUNDLE``), the live deployment. Upstream the cases share one
  database in file order; here each case first creates what it needs, and user
  names get a per-run suffix so a live run can repeat.
* The four web UI cases of the original Flask ``minitwit_tests.py`` (app only).
"""

import uuid

import pytest
from helpers.ui import add_message
from helpers.ui import login
from helpers.ui import logout
from helpers.ui import register
from helpers.ui import register_and_login

RUN = uuid.uuid4().hex[:8]


@pytest.fixture
def names():
    """User names ``a``, ``b``, ``c``, unique per run (for live deployments)."""
    return {key: f"{key}-{RUN}" for key in "abc"}


def latest(sim_api):
    """The value of ``GET /latest``."""
    rv = sim_api.get("/latest")
    assert rv.ok
    return rv.json()["latest"]


def register_user(sim_api, name, latest_id):
    """Upstream's register request for user ``name``."""
    data = {"username": name, "email": f"{name}@{name}.{name}", "pwd": name}
    return sim_api.post("/register", json=data, params={"latest": latest_id})


def follow(sim_api, who, whom, latest_id, action="follow"):
    """Upstream's follow/unfollow request."""
    return sim_api.post(f"/fllws/{who}", json={action: whom}, params={"latest": latest_id})


# --- simulator API: the nine upstream cases -------------------------------------------


def test_latest(sim_api):
    """A request with ``latest`` updates the value that ``GET /latest`` returns."""
    data = {"username": f"test-{RUN}", "email": "test@test", "pwd": "foo"}
    rv = sim_api.post("/register", json=data, params={"latest": 1337})
    assert rv.ok
    assert latest(sim_api) == 1337


def test_register(sim_api, names):
    """Registering a user answers 2xx and records ``latest``."""
    rv = register_user(sim_api, names["a"], 1)
    assert rv.ok
    assert latest(sim_api) == 1


def test_create_msg(sim_api, names):
    """A user can post a message."""
    register_user(sim_api, names["a"], 1)
    rv = sim_api.post(f"/msgs/{names['a']}", json={"content": "Blub!"}, params={"latest": 2})
    assert rv.ok
    assert latest(sim_api) == 2


def test_get_latest_user_msgs(sim_api, names):
    """A user's messages include the one just posted."""
    register_user(sim_api, names["a"], 1)
    sim_api.post(f"/msgs/{names['a']}", json={"content": "Blub!"}, params={"latest": 2})
    rv = sim_api.get(f"/msgs/{names['a']}", params={"no": 20, "latest": 3})
    assert rv.status_code == 200
    assert any(m["content"] == "Blub!" and m["user"] == names["a"] for m in rv.json())
    assert latest(sim_api) == 3


def test_get_latest_msgs(sim_api, names):
    """The public message list includes the message just posted."""
    register_user(sim_api, names["a"], 1)
    sim_api.post(f"/msgs/{names['a']}", json={"content": "Blub!"}, params={"latest": 2})
    rv = sim_api.get("/msgs", params={"no": 20, "latest": 4})
    assert rv.status_code == 200
    assert any(m["content"] == "Blub!" and m["user"] == names["a"] for m in rv.json())
    assert latest(sim_api) == 4


def test_register_b(sim_api, names):
    """Registering user b works."""
    assert register_user(sim_api, names["b"], 5).ok
    assert latest(sim_api) == 5


def test_register_c(sim_api, names):
    """Registering user c works."""
    assert register_user(sim_api, names["c"], 6).ok
    assert latest(sim_api) == 6


def test_follow_user(sim_api, names):
    """a follows b and c; both appear in a's follows list."""
    a, b, c = names["a"], names["b"], names["c"]
    for i, name in enumerate((a, b, c), start=1):
        register_user(sim_api, name, i)
    assert follow(sim_api, a, b, 7).ok
    assert follow(sim_api, a, c, 8).ok
    rv = sim_api.get(f"/fllws/{a}", params={"no": 20, "latest": 9})
    assert rv.ok
    assert b in rv.json()["follows"]
    assert c in rv.json()["follows"]
    assert latest(sim_api) == 9


def test_a_unfollows_b(sim_api, names):
    """After a unfollows b, b is no longer in a's follows list."""
    a, b = names["a"], names["b"]
    register_user(sim_api, a, 1)
    register_user(sim_api, b, 2)
    follow(sim_api, a, b, 7)
    assert follow(sim_api, a, b, 10, action="unfollow").ok
    rv = sim_api.get(f"/fllws/{a}", params={"no": 20, "latest": 11})
    assert rv.ok
    assert b not in rv.json()["follows"]
    assert latest(sim_api) == 11


# --- web UI: the four original MiniTwit cases -----------------------------------------


def test_ui_register(client):
    """Make sure registering works."""
    rv = register(client, "user1", "default")
    assert b"You were successfully registered and can login now" in rv.data
    rv = register(client, "user1", "default")
    assert b"The username is already taken" in rv.data
    rv = register(client, "", "default")
    assert b"You have to enter a username" in rv.data
    rv = register(client, "meh", "")
    assert b"You have to enter a password" in rv.data
    rv = register(client, "meh", "x", "y")
    assert b"The two passwords do not match" in rv.data
    rv = register(client, "meh", "foo", email="broken")
    assert b"You have to enter a valid email address" in rv.data


def test_ui_login_logout(client):
    """Make sure logging in and logging out works."""
    rv = register_and_login(client, "user1", "default")
    assert b"You were logged in" in rv.data
    rv = logout(client)
    assert b"You were logged out" in rv.data
    rv = login(client, "user1", "wrongpassword")
    assert b"Invalid password" in rv.data
    rv = login(client, "user2", "wrongpassword")
    assert b"Invalid username" in rv.data


def test_ui_message_recording(client):
    """Check if adding messages works, with HTML escaping."""
    register_and_login(client, "foo", "default")
    add_message(client, "test message 1")
    add_message(client, "<test message 2>")
    rv = client.get("/")
    assert b"test message 1" in rv.data
    assert b"&lt;test message 2&gt;" in rv.data


def test_ui_timelines(client):
    """Make sure that timelines work, including follow and unfollow."""
    register_and_login(client, "foo", "default")
    add_message(client, "the message by foo")
    logout(client)
    register_and_login(client, "bar", "default")
    add_message(client, "the message by bar")
    rv = client.get("/public")
    assert b"the message by foo" in rv.data
    assert b"the message by bar" in rv.data

    # bar's timeline should just show bar's message
    rv = client.get("/")
    assert b"the message by foo" not in rv.data
    assert b"the message by bar" in rv.data

    # now let's follow foo
    rv = client.get("/foo/follow", follow_redirects=True)
    assert b"You are now following &#34;foo&#34;" in rv.data

    # we should now see foo's message
    rv = client.get("/")
    assert b"the message by foo" in rv.data
    assert b"the message by bar" in rv.data

    # but on the user's page we only want the user's message
    rv = client.get("/bar")
    assert b"the message by foo" not in rv.data
    assert b"the message by bar" in rv.data
    rv = client.get("/foo")
    assert b"the message by foo" in rv.data
    assert b"the message by bar" not in rv.data

    # now unfollow and check if that worked
    rv = client.get("/foo/unfollow", follow_redirects=True)
    assert b"You are no longer following &#34;foo&#34;" in rv.data
    rv = client.get("/")
    assert b"the message by foo" not in rv.data
    assert b"the message by bar" in rv.data
