"""Per-user ordering for concurrent replay.

Each action waits for (a) the previous action of the same user and (b) the register of the other user it
follows/unfollows, so a user's register comes before anything involving them and each user's
tweet/follow/unfollow sequence stays in file order. Everything else may run concurrently. The last row
optionally waits for all others, so the final ``/latest`` is the scenario's last id, as after a sequential run.

Without a window, every action whose dependencies are done may start, however far ahead in the file: all
200 registers are ready at once and arrive together. With ``window=N`` an action may start only while it is
fewer than N rows after the oldest unfinished one, so requests arrive roughly in file order, as from many
simulators working through the same timeline.
The core is not thread-aware; the engines wrap it in a lock or run it on one event loop.
"""

import heapq

from bench.scenario import Action


class Scheduler:
    """Hands out ready actions lowest id first and releases dependents when an action completes."""

    def __init__(self, actions: list[Action], last_is_barrier: bool = True, window: int | None = None):
        if window is not None and window < 1:
            raise ValueError("window must be at least 1 row")
        self.actions = actions
        self.window = window
        self._done = [False] * len(actions)
        self._oldest = 0  # index of the oldest unfinished action
        self._waiting = [0] * len(actions)  # number of unfinished dependencies per action index
        self._dependents: list[list[int]] = [[] for _ in actions]
        self._ready: list[int] = []
        self._unfinished = len(actions)
        self._build(last_is_barrier)

    def _build(self, last_is_barrier: bool) -> None:
        """Compute the dependency edges in one pass over the file order."""
        last_of_user: dict[str, int] = {}
        register_of: dict[str, int] = {}
        for i, action in enumerate(self.actions):
            deps = {last_of_user.get(action.username), register_of.get(action.target() or "")}
            if last_is_barrier and i == len(self.actions) - 1 and i > 0:
                deps = set(range(i))
            for dep in deps - {None}:
                self._dependents[dep].append(i)
                self._waiting[i] += 1
            last_of_user[action.username] = i
            if action.command == "register":
                register_of.setdefault(action.username, i)
        self._ready = [i for i, n in enumerate(self._waiting) if n == 0]
        heapq.heapify(self._ready)

    def pop(self) -> tuple[int, Action] | None:
        """Take the lowest-numbered ready action, or None when nothing is ready right now."""
        if not self._ready:
            return None
        if self.window is not None and self._ready[0] >= self._oldest + self.window:
            return None
        i = heapq.heappop(self._ready)
        return i, self.actions[i]

    def complete(self, i: int) -> int:
        """Mark action ``i`` finished (whatever its outcome); return how many actions may start now."""
        self._unfinished -= 1
        released = 0
        for dep in self._dependents[i]:
            self._waiting[dep] -= 1
            if self._waiting[dep] == 0:
                heapq.heappush(self._ready, dep)
                released += 1
        self._done[i] = True
        if i != self._oldest:
            return released
        while self._oldest < len(self._done) and self._done[self._oldest]:
            self._oldest += 1
        return max(released, len(self._ready)) if self.window is not None else released

    @property
    def finished(self) -> bool:
        """True once every action has completed."""
        return self._unfinished == 0
