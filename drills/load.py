"""Steady, bounded, simulator-style load through Traefik, recording every request.

A few worker threads each pace themselves to a fixed share of the target rate and
cycle through a fixed mix of simulator API writes (register, tweet, follow) and
reads (API timelines, follows, ``/latest`` and the public UI timeline).  Every
request becomes a ``Record``; every write attempt becomes a ``Write`` so the
verifier can later prove that each one answered 204 is really stored.

Bounds: the generator stops on ``stop()``, after ``max_seconds`` or after
``max_requests`` requests, whichever comes first, and never bursts to catch up.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

from bench.client import Response
from bench.client import Target
from bench.client import send

# One cycle per worker: 3 tweets, 1 register, 1 follow and 5 reads (half writes
# would starve the reads; the simulator itself is write-only, real users mostly read).
CYCLE = (
    "register",
    "tweet",
    "read_msgs",
    "tweet",
    "read_public",
    "follow",
    "read_user",
    "tweet",
    "read_latest",
    "read_follows",
)
WRITE_OPS = frozenset({"register", "tweet", "follow"})
EXCERPT = 4000  # long enough to hold the message of an HTML error page


@dataclass(frozen=True)
class Record:
    """One request as the client saw it."""

    op: str
    started: float
    latency: float
    status: int | None
    error: str | None
    body: str = ""

    @property
    def write(self) -> bool:
        """True for register, tweet and follow."""
        return self.op in WRITE_OPS

    @property
    def ok(self) -> bool:
        """A write succeeded on 204, a read on 200; anything else is a failure."""
        return self.status == (204 if self.write else 200)


@dataclass(frozen=True)
class Write:
    """One write attempt: ``value`` is the email, the message text or the followee."""

    kind: str
    user: str
    value: str
    status: int | None
    answered_at: float

    @property
    def accepted(self) -> bool:
        """The server promised durability by answering 204."""
        return self.status == 204


class LoadGenerator:
    """Runs the worker threads and collects records and writes (thread-safe)."""

    def __init__(
        self,
        target: Target,
        name: str,
        *,
        rate: float = 16.0,
        workers: int = 4,
        max_seconds: float = 600.0,
        max_requests: int = 20000,
        seed: int = 1,
    ):
        self.target, self.name = target, name
        self.rate, self.workers = rate, workers
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.run_id = f"{int(time.time()) % 100000:05d}"
        self.records: list[Record] = []
        self.writes: list[Write] = []
        self._users: list[str] = []
        self._pairs: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._issued = itertools.count(1)
        self._latest = itertools.count(1)
        self._random = random.Random(seed)
        self.started = 0.0

    # -- lifecycle -------------------------------------------------------
    def start(self) -> LoadGenerator:
        """Start the workers; returns self so ``with``-less use stays short."""
        self.started = time.monotonic()
        for worker in range(self.workers):
            thread = threading.Thread(target=self._work, args=(worker,), daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        """Ask the workers to finish their current request and wait for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.target.timeout + 5)

    def wait(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s each) for workers that stop at a bound."""
        for thread in self._threads:
            thread.join(timeout)

    def now(self) -> float:
        """Seconds since the load started (the time axis of every record)."""
        return time.monotonic() - self.started

    def accepted_before(self, moment: float) -> list[Write]:
        """Writes answered 204 before ``moment`` (seconds on the load's time axis)."""
        with self._lock:
            return [w for w in self.writes if w.accepted and w.answered_at <= moment]

    # -- workers ---------------------------------------------------------
    def _work(self, worker: int) -> None:
        interval = self.workers / self.rate
        due = time.monotonic() + worker * interval / self.workers
        for step in itertools.count():
            if self._stop.is_set() or self.now() > self.max_seconds:
                return
            if next(self._issued) > self.max_requests:
                return
            self._stop.wait(max(0.0, due - time.monotonic()))
            if self._stop.is_set():
                return
            self._run_op(worker, CYCLE[step % len(CYCLE)], step)
            due = max(due + interval, time.monotonic())  # never burst to catch up

    def _run_op(self, worker: int, op: str, step: int) -> None:
        users = self._snapshot_users()
        if len(users) < (2 if op == "follow" else 1):
            op = "register"
        handler = getattr(self, f"_op_{op}")
        request_id = f"{self.name}-{self.run_id}-w{worker}-{step}"
        started = self.now()
        response, write = handler(worker, step, users, request_id)
        self._record(op, started, response, write)

    def _record(self, op: str, started: float, response: Response, write: Write | None) -> None:
        body = "" if response.status in (200, 204) else response.body[:EXCERPT].decode("utf-8", "replace")
        record = Record(op, started, response.latency, response.status, response.error, body)
        with self._lock:
            self.records.append(record)
            if write is not None:
                self.writes.append(write)
                if write.kind == "register" and write.accepted:
                    self._users.append(write.user)

    def _snapshot_users(self) -> list[str]:
        with self._lock:
            return list(self._users)

    def _api(self, method: str, path: str, payload=None, *, auth=True, request_id=None) -> Response:
        latest = next(self._latest)
        joiner = "&" if "?" in path else "?"
        return send(self.target, method, f"{path}{joiner}latest={latest}", payload, auth=auth, request_id=request_id)

    def _write(self, kind: str, user: str, value: str, response: Response) -> Write:
        return Write(kind, user, value, response.status, self.now())

    # -- operations: each returns (response, write or None) --------------
    def _op_register(self, worker, step, users, rid):
        user = f"{self.name} {self.run_id} w{worker} u{step}"
        payload = {
            "username": user,
            "email": f"w{worker}u{step}@drill.test",
            "pwd": "drill-pass",
        }
        response = self._api("POST", "/register", payload, auth=False, request_id=rid)
        return response, self._write("register", user, payload["email"], response)

    def _op_tweet(self, worker, step, users, rid):
        user = self._random.choice(users)
        text = f"{self.name}/{self.run_id} w{worker} #{step}: steady load ✓ ünïcode"
        response = self._api("POST", f"/msgs/{quote(user)}", {"content": text}, request_id=rid)
        return response, self._write("tweet", user, text, response)

    def _op_follow(self, worker, step, users, rid):
        who, whom = self._pick_pair(users)
        response = self._api("POST", f"/fllws/{quote(who)}", {"follow": whom}, request_id=rid)
        return response, self._write("follow", who, whom, response)

    def _pick_pair(self, users: list[str]) -> tuple[str, str]:
        """Pick a not-yet-tried (who, whom) pair; any pair once all are used."""
        with self._lock:
            for _ in range(20):
                pair = (self._random.choice(users), self._random.choice(users))
                if pair[0] != pair[1] and pair not in self._pairs:
                    break
            self._pairs.add(pair)
        return pair

    def _op_read_msgs(self, worker, step, users, rid):
        return self._api("GET", "/msgs?no=20", request_id=rid), None

    def _op_read_user(self, worker, step, users, rid):
        user = quote(self._random.choice(users))
        return self._api("GET", f"/msgs/{user}?no=20", request_id=rid), None

    def _op_read_follows(self, worker, step, users, rid):
        user = quote(self._random.choice(users))
        return self._api("GET", f"/fllws/{user}?no=20", request_id=rid), None

    def _op_read_latest(self, worker, step, users, rid):
        return self._api("GET", "/latest", auth=False, request_id=rid), None

    def _op_read_public(self, worker, step, users, rid):
        return send(self.target.root, "GET", "/public", request_id=rid), None
