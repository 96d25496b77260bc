"""Skip a check whose tool is missing, or fail it when ``MINITWIT_STRICT=1`` demands every check."""

import os
import sys

STRICT = os.environ.get("MINITWIT_STRICT") == "1"


class Unavailable(RuntimeError):
    """A tool or service a check needs is missing: a skip locally, a failure under MINITWIT_STRICT=1."""


def skip_or_fail(reason: str):
    """Skip the running pytest test with a clear reason, or fail it under MINITWIT_STRICT=1 (CI)."""
    import pytest  # only pytest callers get here; bench and drills report Unavailable themselves

    if STRICT:
        pytest.fail(f"{reason} (MINITWIT_STRICT=1)", pytrace=False)
    pytest.skip(f"SKIPPED: {reason}")


def skipped_exit_status(missing: Unavailable) -> int:
    """For a command-line tool: say SKIPPED on stderr; exit status 1 under MINITWIT_STRICT=1, else 0."""
    print(f"SKIPPED: {missing}", file=sys.stderr)
    return 1 if STRICT else 0
