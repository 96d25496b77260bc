"""The MiniTwit schema, the queries that read it and the writes, registration's rules included.

Table and column names are the original MiniTwit's (``user``, ``follower``,
``message``) so existing data and tools keep working. Query builders return a
``Select``; the views execute them. The web pages and the API call the same functions
here, so a rule such as who may register holds for both.
"""

import time
import unicodedata

from flask import current_app
from flask import g
from sqlalchemy import BigInteger
from sqlalchemy import Connection
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import Select
from sqlalchemy import SmallInteger
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import bindparam
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import text as sql_text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from werkzeug.exceptions import HTTPException

from .extensions import db
from .passwords import hash_password


class User(db.Model):
    """A registered user; ``username`` is unique in the database, not only in the code."""

    __tablename__ = "user"

    user_id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    pw_hash: Mapped[str] = mapped_column(String(255))


class Follower(db.Model):
    """``who_id`` follows ``whom_id``; the primary key makes following idempotent."""

    __tablename__ = "follower"

    who_id: Mapped[int] = mapped_column(ForeignKey("user.user_id", ondelete="CASCADE"), primary_key=True)
    whom_id: Mapped[int] = mapped_column(ForeignKey("user.user_id", ondelete="CASCADE"), primary_key=True)

    __table_args__ = (Index("ix_follower_whom_id", "whom_id"),)


class Message(db.Model):
    """A message; ``pub_date`` is Unix epoch seconds, ``flagged=1`` hides it everywhere."""

    __tablename__ = "message"

    message_id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("user.user_id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    pub_date: Mapped[int] = mapped_column(BigInteger)
    flagged: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=sql_text("0"))

    __table_args__ = (
        # A user's page and the home timeline: newest messages of given authors.
        Index("ix_message_author_id_pub_date", "author_id", "pub_date", "message_id"),
        # The public timeline: newest visible messages of everyone.
        Index(
            "ix_message_public",
            "pub_date",
            "message_id",
            postgresql_where=sql_text("flagged = 0"),
            sqlite_where=sql_text("flagged = 0"),
        ),
    )


class Latest(db.Model):
    """The simulator's ``latest`` value: one row, shared by every replica."""

    __tablename__ = "latest"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger)


class SigninAttempt(db.Model):
    """A sign-in let through to the password check and not (yet) successful: one place in a budget.

    ``bucket`` names whose budget it took (an account, or one browser trusted for it), as a keyed
    hash, never the name typed; ``attempted_ms`` is Unix epoch milliseconds. See throttle.py.
    """

    __tablename__ = "signin_attempt"

    attempt_id: Mapped[int] = mapped_column(primary_key=True)
    bucket: Mapped[str] = mapped_column(String(64))
    attempted_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        # A budget's places in its window; and the expired ones, which every attempt cleans up.
        Index("ix_signin_attempt_bucket", "bucket", "attempted_ms"),
        Index("ix_signin_attempt_attempted_ms", "attempted_ms"),
    )


BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1  # what ``latest.value`` holds

USERNAME_TAKEN = "The username is already taken"
USERNAME_INVISIBLE = (
    "The username may not contain control or format characters "
    "(Unicode categories Cc and Cf, such as bidi overrides and zero-width characters)"
)
# Unicode categories that are invisible or reorder text: a name with them can impersonate another.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf"})
USERNAME_NOT_A_PATH = 'The username cannot be a page address: no "/", and not "." or ".."'
# A user's page and its two links; a name whose addresses lead anywhere else is not free.
USER_PAGES = (
    ("", "timeline.user_timeline"),
    ("/follow", "timeline.follow_user"),
    ("/unfollow", "timeline.unfollow_user"),
)

# The simulator API's statements, built once at import (the API's hot path skips building and
# caching a statement per request). Each is one statement, the same on PostgreSQL and SQLite.
ADD_MESSAGE = sql_text(
    "INSERT INTO message (author_id, text, pub_date, flagged) VALUES (:author_id, :text, :pub_date, 0)"
)
ADD_MESSAGE_AS = sql_text(
    'INSERT INTO message (author_id, text, pub_date, flagged) SELECT user_id, :text, :pub_date, 0 FROM "user"'
    " WHERE username = :username RETURNING message_id"
)
FOLLOW = sql_text("INSERT INTO follower (who_id, whom_id) VALUES (:who_id, :whom_id) ON CONFLICT DO NOTHING")
UNFOLLOW = sql_text("DELETE FROM follower WHERE who_id = :who_id AND whom_id = :whom_id")
FOLLOW_BY_NAME = sql_text(
    'INSERT INTO follower (who_id, whom_id) SELECT who.user_id, whom.user_id FROM "user" who, "user" whom'
    " WHERE who.username = :who AND whom.username = :whom ON CONFLICT DO NOTHING"
)
UNFOLLOW_BY_NAME = sql_text(
    'DELETE FROM follower WHERE who_id = (SELECT user_id FROM "user" WHERE username = :who)'
    ' AND whom_id = (SELECT user_id FROM "user" WHERE username = :whom)'
)
USER_IDS = select(User.username, User.user_id).where(User.username.in_(bindparam("names", expanding=True)))
RECORD_LATEST = sql_text(
    "INSERT INTO latest (id, value) VALUES (1, :value) ON CONFLICT (id) DO UPDATE SET value = excluded.value"
)
RECORD_LATEST_PG = (
    "BEGIN; SET LOCAL synchronous_commit TO OFF;"
    " INSERT INTO latest (id, value) VALUES (1, %d) ON CONFLICT (id) DO UPDATE SET value = excluded.value;"
    " COMMIT"
)


def connection() -> Connection:
    """Where this request's statements run: the API's autocommit connection while the API holds one
    (``api.hold_api_connection``), else the ORM session's connection and transaction (web pages, CLI).
    """
    held = g.get("api_connection")
    return held if held is not None else db.session.connection()


def storable(value: str) -> bool:
    """Tell whether a string can be stored: no NUL (PostgreSQL refuses it), no lone surrogates."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def get_user_id(username: str) -> int | None:
    """Look up the id for a username; a name that could never be stored belongs to nobody."""
    if not storable(username):
        return None
    return connection().scalar(select(User.user_id).where(User.username == username))


def get_user_ids(*usernames: str) -> dict[str, int]:
    """Look up several users in one query: {username: user_id} for those that exist."""
    names = [name for name in usernames if storable(name)]
    if not names:
        return {}
    rows = connection().execute(USER_IDS, {"names": names})
    return {username: user_id for username, user_id in rows}


def has_invisible_characters(text: str) -> bool:
    """Tell whether ``text`` has a control or format character (bidi overrides, zero widths)."""
    return any(unicodedata.category(char) in INVISIBLE_CATEGORIES for char in text)


def is_path_unsafe(username: str) -> bool:
    """Tell whether no URL can address ``/<username>``: a "/" splits it, and browsers resolve "." and ".." away."""
    return "/" in username or username in (".", "..")


def claims_a_page(username: str) -> bool:
    """Tell whether ``/<username>`` or its follow links already are another page (``/public``, ``/health``).

    Read from the app's own routes, so a page added later reserves its name without a list to update.
    """
    adapter = current_app.url_map.bind("localhost")
    for suffix, endpoint in USER_PAGES:
        try:
            matched, _ = adapter.match(f"/{username}{suffix}", method="GET")
        except HTTPException:  # 404 (no route), 405, or a redirect to another address
            return True
        if matched != endpoint:
            return True
    return False


def registration_error(username: str, email: str, password: str, password2: str | None = None) -> str | None:
    """Return the first failing registration check's message, in the contract's order, or None.

    ``password2`` is the web form's repeated password; the API has none and passes None.
    """
    config = current_app.config
    if not all(storable(field or "") for field in (username, email, password, password2)):
        return "The form contains characters that cannot be stored (NUL or invalid Unicode)"
    if not username:
        return "You have to enter a username"
    if has_invisible_characters(username):
        return USERNAME_INVISIBLE
    if is_path_unsafe(username):
        return USERNAME_NOT_A_PATH
    if len(username) > config["MAX_USERNAME_LENGTH"]:
        return f"The username is too long (at most {config['MAX_USERNAME_LENGTH']} characters)"
    if not email or "@" not in email or len(email) > config["MAX_EMAIL_LENGTH"]:
        return "You have to enter a valid email address"
    if not password:
        return "You have to enter a password"
    if len(password) > config["MAX_PASSWORD_LENGTH"]:
        return f"The password is too long (at most {config['MAX_PASSWORD_LENGTH']} characters)"
    if password2 is not None and password != password2:
        return "The two passwords do not match"
    if claims_a_page(username) or get_user_id(username) is not None:
        return USERNAME_TAKEN  # a page of the site's own holds the name as surely as a user does
    return None


def create_user(username: str, email: str, password: str) -> str | None:
    """Store a new user; return an error message if the name was taken meanwhile."""
    db.session.commit()  # hand back the checks' pooled connection: none is held while hashing
    db.session.add(User(username=username, email=email, pw_hash=hash_password(password)))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return USERNAME_TAKEN
    return None


def register_user(username: str, email: str, password: str, password2: str | None = None) -> str | None:
    """Register a user if every check passes; return the first failing check's message, or None."""
    return registration_error(username, email, password, password2) or create_user(username, email, password)


def message_rows(*conditions) -> Select:
    """Visible messages with their authors, newest first, filtered by ``conditions``."""
    return (
        select(Message.text, Message.pub_date, User.username, User.email)
        .join(User, User.user_id == Message.author_id)
        .where(Message.flagged == 0, *conditions)
        .order_by(Message.pub_date.desc(), Message.message_id.desc())
    )


def public_timeline_query() -> Select:
    """Everybody's messages."""
    return message_rows()


def user_timeline_query(user_id: int) -> Select:
    """One user's messages."""
    return message_rows(Message.author_id == user_id)


def home_timeline_query(user_id: int) -> Select:
    """A user's own messages and those of the users they follow."""
    followed = select(Follower.whom_id).where(Follower.who_id == user_id)
    return message_rows(or_(Message.author_id == user_id, Message.author_id.in_(followed)))


def add_message(author_id: int, content: str) -> None:
    """Store a new, visible message stamped with the server's time."""
    connection().execute(ADD_MESSAGE, {"author_id": author_id, "text": content, "pub_date": int(time.time())})


def add_message_as(username: str, content: str) -> bool:
    """Store a message by ``username`` in one statement; False if there is no such user."""
    if not storable(username):
        return False
    params = {"username": username, "text": content, "pub_date": int(time.time())}
    return connection().execute(ADD_MESSAGE_AS, params).first() is not None


def is_following(who_id: int, whom_id: int) -> bool:
    """Tell whether ``who_id`` follows ``whom_id``."""
    return db.session.get(Follower, (who_id, whom_id)) is not None


def follow(who_id: int, whom_id: int) -> None:
    """Follow a user; following twice keeps one row, even under concurrent requests."""
    connection().execute(FOLLOW, {"who_id": who_id, "whom_id": whom_id})


def unfollow(who_id: int, whom_id: int) -> None:
    """Stop following a user; unfollowing someone not followed is not an error."""
    connection().execute(UNFOLLOW, {"who_id": who_id, "whom_id": whom_id})


def follow_by_name(who: str, whom: str) -> bool:
    """``who`` follows ``whom``, by name, in one statement; True if a row was added.

    False means one of them does not exist or ``who`` already follows ``whom``.
    """
    if not (storable(who) and storable(whom)):
        return False
    return connection().execute(FOLLOW_BY_NAME, {"who": who, "whom": whom}).rowcount > 0


def unfollow_by_name(who: str, whom: str) -> bool:
    """``who`` stops following ``whom``, by name, in one statement; True if a row was removed.

    False means one of them does not exist or ``who`` did not follow ``whom``.
    """
    if not (storable(who) and storable(whom)):
        return False
    return connection().execute(UNFOLLOW_BY_NAME, {"who": who, "whom": whom}).rowcount > 0


def followed_usernames(user_id: int, limit: int) -> list[str]:
    """Names of the users ``user_id`` follows."""
    query = (
        select(User.username)
        .join(Follower, Follower.whom_id == User.user_id)
        .where(Follower.who_id == user_id)
        .order_by(User.user_id)
        .limit(limit)
    )
    return list(connection().scalars(query))


def get_latest() -> int:
    """The last ``latest`` value the simulator sent, or -1 before the first."""
    value = connection().scalar(select(Latest.value).where(Latest.id == 1))
    return -1 if value is None else value


def record_latest(value: int) -> None:
    """Record ``latest`` (last write wins) in a short transaction of its own, one round trip.

    Every simulator request writes this one row. Inside the request's own transaction its lock
    would be held through the durable commit and serialise all API writes, so the API runs in
    autocommit mode (each write is committed, durably, as it executes) and ``latest`` follows in
    its own transaction. On PostgreSQL that commit does not wait for the WAL flush: ``latest`` is
    a progress marker, and a crash may lose its last value (never a message or a follow, which
    were committed durably first). ``SET LOCAL`` needs a transaction block, and the whole block
    goes as one simple-protocol query (which alone may hold several statements), so ``value``
    is inlined: it is an ``int`` in BIGINT range, checked here, never text from the request.
    """
    if not isinstance(value, int) or not BIGINT_MIN <= value <= BIGINT_MAX:
        raise ValueError(f"latest must be an int in BIGINT range, got {value!r}")
    held = connection()
    if held.dialect.name == "postgresql":
        held.connection.dbapi_connection.execute(RECORD_LATEST_PG % value, prepare=False)
    else:
        held.execute(RECORD_LATEST, {"value": value})
