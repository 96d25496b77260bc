"""Prove that every write answered 204 is stored, by reading it back through the API.

For each user that took part in a write we fetch ``/msgs/<user>`` and
``/fllws/<user>`` (with the API's maximum ``no``) once, then ``reconcile``
compares those snapshots with the write log.  ``reconcile`` is pure, so the
loss accounting is unit-tested on small real inputs.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import quote

from bench.client import Target
from bench.client import send
from drills.load import Write

MAX_NO = 1000


@dataclass
class UserState:
    """What the API says about one user: ``exists`` is False on 404."""

    exists: bool
    messages: list[str] = field(default_factory=list)
    follows: list[str] = field(default_factory=list)


@dataclass
class Verification:
    """Loss accounting for one drill."""

    accepted: int = 0
    verified: int = 0
    lost: list[Write] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    failed_but_stored: int = 0
    failed_not_stored: int = 0
    unreadable_users: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Summary for the report (lost writes listed, at most 20)."""
        return {
            "accepted": self.accepted,
            "verified": self.verified,
            "lost": len(self.lost),
            "lost_examples": [f"{w.kind} {w.user!r} {w.value!r}" for w in self.lost[:20]],
            "duplicated_messages": len(self.duplicated),
            "failed_writes_stored_anyway": self.failed_but_stored,
            "failed_writes_not_stored": self.failed_not_stored,
            "unreadable_users": self.unreadable_users[:20],
        }


def is_stored(write: Write, state: UserState | None) -> bool | None:
    """True/False when ``state`` tells; None when the user could not be read."""
    if state is None:
        return None
    if write.kind == "register":
        return state.exists
    if write.kind == "tweet":
        return write.value in state.messages
    if write.kind == "follow":
        return write.value in state.follows
    raise ValueError(f"unknown write kind {write.kind!r}")


def reconcile(writes: list[Write], states: dict[str, UserState | None]) -> Verification:
    """Compare the write log with the API snapshots; unreadable users count as lost."""
    result = Verification()
    for write in writes:
        stored = is_stored(write, states.get(write.user))
        if write.accepted:
            result.accepted += 1
            if stored:
                result.verified += 1
            else:
                result.lost.append(write)
        elif stored:
            result.failed_but_stored += 1
        else:
            result.failed_not_stored += 1
    result.unreadable_users = sorted(u for u, s in states.items() if s is None)
    result.duplicated = _duplicates(writes, states)
    return result


def _duplicates(writes: list[Write], states: dict[str, UserState | None]) -> list[str]:
    """Messages of ours stored more than once (a retried POST would show up here)."""
    ours = {w.value for w in writes if w.kind == "tweet"}
    counts = Counter(m for s in states.values() if s for m in s.messages if m in ours)
    return sorted(m for m, n in counts.items() if n > 1)


def _unknown_user(response) -> bool:
    """The app's own JSON 404, not Traefik's plain "404 page not found" when no route exists."""
    body = response.json() if response.status == 404 else None
    return isinstance(body, dict) and body.get("status") == 404


def fetch_state(target: Target, user: str, *, attempts: int = 10, pause: float = 1.0) -> UserState | None:
    """Read one user's messages and follows; retry; None if unreadable."""
    name = quote(user)
    for _ in range(attempts):
        msgs = send(target, "GET", f"/msgs/{name}?no={MAX_NO}", auth=True)
        fllws = send(target, "GET", f"/fllws/{name}?no={MAX_NO}", auth=True)
        if _unknown_user(msgs) and _unknown_user(fllws):
            return UserState(exists=False)
        if msgs.status == 200 and fllws.status == 200:
            contents = [m["content"] for m in msgs.json() if m.get("user") == user]
            return UserState(True, contents, list(fllws.json()["follows"]))
        time.sleep(pause)
    return None


def verify(target: Target, writes: list[Write]) -> Verification:
    """Read back every user touched by ``writes`` and reconcile."""
    users = sorted({w.user for w in writes})
    states = {user: fetch_state(target, user) for user in users}
    return reconcile(writes, states)
