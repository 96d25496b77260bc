"""Bulk-seed PostgreSQL with COPY: users, follows and messages in the app's schema, deterministically.

The shape mimics a busy MiniTwit: every user follows ~20 others, one user follows 150 (the home timeline
case), one user writes 2% of all messages (the busy user page), 1% of messages are flagged, and newer
messages have later ``pub_date`` values, so growing the table works like time passing.
"""

import random

import psycopg
from werkzeug.security import generate_password_hash

PASSWORD = "scale-test-password"
BUSY_USER = "busy user"  # writes BUSY_SHARE of all messages
FAN_USER = "fan user"  # follows FAN_FOLLOWS users
BUSY_SHARE = 0.02
FAN_FOLLOWS = 150
FLAGGED_SHARE = 0.01
EPOCH0 = 1_600_000_000  # pub_date of message 0; each next message is 30 s later
WORDS = "hour yesterday white face saw the of and my it to was that in he I with had his as for on but".split()


def connect(database_url: str) -> psycopg.Connection:
    """A psycopg connection from the app's SQLAlchemy URL."""
    return psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def username(user_id: int) -> str:
    """The name of user ``user_id`` (1 is the busy user, 2 the fan)."""
    return {1: BUSY_USER, 2: FAN_USER}.get(user_id, f"user {user_id:05d}")


def seed_users(conn: psycopg.Connection, users: int) -> None:
    """COPY ``users`` users sharing one password hash (hashed once: the cost is per hash, not per row)."""
    pw_hash = generate_password_hash(PASSWORD)
    with conn.cursor().copy('COPY "user" (user_id, username, email, pw_hash) FROM STDIN') as copy:
        for uid in range(1, users + 1):
            copy.write_row((uid, username(uid), f"user{uid}@example.com", pw_hash))
    conn.execute("SELECT setval(pg_get_serial_sequence('\"user\"', 'user_id'), %s)", (users,))


def follow_pairs(users: int, follows: int, seed: int = 7) -> set[tuple[int, int]]:
    """Distinct (who, whom) pairs: the fan follows FAN_FOLLOWS users, the rest spread over everyone."""
    rng = random.Random(seed)
    pairs = {(2, whom) for whom in rng.sample(range(3, users + 1), min(FAN_FOLLOWS, users - 2))}
    pairs.add((2, 1))
    while len(pairs) < follows:
        who, whom = rng.randint(1, users), rng.randint(1, users)
        if who != whom and who != 2:
            pairs.add((who, whom))
    return pairs


def seed_follows(conn: psycopg.Connection, users: int, follows: int) -> int:
    """COPY the follower rows; return how many."""
    pairs = follow_pairs(users, follows)
    with conn.cursor().copy("COPY follower (who_id, whom_id) FROM STDIN") as copy:
        for pair in sorted(pairs):
            copy.write_row(pair)
    return len(pairs)


def seed_messages(conn: psycopg.Connection, users: int, start: int, stop: int) -> None:
    """COPY messages number ``start`` .. ``stop - 1`` (continuing an earlier seed), then ANALYZE."""
    rng = random.Random(start)
    with conn.cursor().copy("COPY message (author_id, text, pub_date, flagged) FROM STDIN") as copy:
        for n in range(start, stop):
            author = 1 if rng.random() < BUSY_SHARE else rng.randint(2, users)
            text = " ".join(rng.choices(WORDS, k=10))
            copy.write_row((author, text, EPOCH0 + 30 * n, 1 if rng.random() < FLAGGED_SHARE else 0))
    conn.execute("VACUUM ANALYZE message")
    conn.execute("VACUUM ANALYZE follower")
    conn.execute('VACUUM ANALYZE "user"')
