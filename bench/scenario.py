"""The simulator's scenario: parse the CSV and turn each row into the exact request the simulator sends.

Mirrors ITU's ``minitwit_simulator.py``: tab-separated rows, ``?latest=<id>``, a ``json.dumps`` body,
``Connection: close``, Basic auth with the simulator's default credentials and a 0.3 s timeout.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from minitwit.config import DEFAULT_SIMULATOR_AUTH
from minitwit.config import basic_authorization

SCENARIO_CSV = Path(__file__).resolve().parent / "data" / "minitwit_scenario.csv"
AUTHORIZATION = basic_authorization(DEFAULT_SIMULATOR_AUTH)
TIMEOUT_S = 0.3
COMMANDS = ("register", "tweet", "follow", "unfollow")
# requests' requote_uri() leaves these characters alone and percent-encodes the rest (spaces -> %20).
_PATH_SAFE = "!#$%&'()*+,/:;=?@[]~"


@dataclass(frozen=True)
class Action:
    """One scenario row: ``arg`` is the email (register), the text (tweet) or the other user (follow/unfollow)."""

    latest: int
    command: str
    username: str
    arg: str
    pwd: str = ""

    def target(self) -> str | None:
        """The other user a follow/unfollow involves, else None."""
        return self.arg if self.command in ("follow", "unfollow") else None


def parse_row(fields: list[str]) -> Action:
    """Build an Action from one split row, like the simulator's ``get_actions()`` (password = last field)."""
    command = fields[3]
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r} in row {fields[0]}")
    pwd = fields[-1] if command == "register" else ""
    return Action(int(fields[0]), command, fields[4], fields[5], pwd)


def load_actions(path: Path = SCENARIO_CSV, rows: int | None = None) -> list[Action]:
    """Read the first ``rows`` rows (all when None), splitting on tabs only (the file has no quoting)."""
    actions = []
    with open(path, encoding="utf-8", newline="") as f:
        for line in f:
            if rows is not None and len(actions) >= rows:
                break
            actions.append(parse_row(line.rstrip("\r\n").split("\t")))
    return actions


def request_for(action: Action) -> tuple[str, str, bytes]:
    """Return (method, path relative to the API base, body) exactly as the simulator builds them."""
    user = quote(action.username, safe=_PATH_SAFE)
    if action.command == "register":
        path, data = "/register", {"username": action.username, "email": action.arg, "pwd": action.pwd}
    elif action.command == "tweet":
        path, data = f"/msgs/{user}", {"content": action.arg}
    else:
        path, data = f"/fllws/{user}", {action.command: action.arg}
    # json.dumps escapes non-ASCII (ensure_ascii), so the body is pure ASCII like the simulator's.
    return "POST", f"{path}?latest={action.latest}", json.dumps(data).encode("ascii")


def error_kind(command: str, status: int) -> str | None:
    """The simulator's rule: register may answer 204 or 400, everything else must answer 204."""
    allowed = (204, 400) if command == "register" else (204,)
    return None if status in allowed else f"HTTP {status}"
