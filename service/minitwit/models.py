"""The MiniTwit schema and the queries that read it.

Table and column names are the original MiniTwit's (``user``, ``follower``,
``message``) so existing data and tools keep working. Query builders return a
``Select``; the views execute them.
"""

import time

from sqlalchemy import BigInteger
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import Select
from sqlalchemy import SmallInteger
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import delete
from sqlalchemy import literal
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from .extensions import db


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


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _insert(model):
    """Return a Core INSERT on the model's table for the session's dialect, which knows ON CONFLICT.

    Core, not the ORM: the request path then skips the unit of work and its autoflush.
    """
    return (postgresql.insert if _dialect() == "postgresql" else sqlite.insert)(model.__table__)


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
    return db.session.scalar(select(User.user_id).where(User.username == username))


def get_user_ids(*usernames: str) -> dict[str, int]:
    """Look up several users in one query: {username: user_id} for those that exist."""
    names = [name for name in usernames if storable(name)]
    if not names:
        return {}
    rows = db.session.execute(select(User.username, User.user_id).where(User.username.in_(names)))
    return {username: user_id for username, user_id in rows}


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
    db.session.execute(_insert(Message).values(author_id=author_id, text=content, pub_date=int(time.time()), flagged=0))


def add_message_as(username: str, content: str) -> bool:
    """Store a message by ``username`` in one statement; False if there is no such user."""
    if not storable(username):
        return False
    author = select(User.user_id, literal(content), literal(int(time.time())), literal(0)).where(
        User.username == username
    )
    columns = ["author_id", "text", "pub_date", "flagged"]
    stmt = _insert(Message).from_select(columns, author).returning(Message.__table__.c.message_id)
    return db.session.scalar(stmt) is not None


def is_following(who_id: int, whom_id: int) -> bool:
    """Tell whether ``who_id`` follows ``whom_id``."""
    return db.session.get(Follower, (who_id, whom_id)) is not None


def follow(who_id: int, whom_id: int) -> None:
    """Follow a user; following twice keeps one row, even under concurrent requests."""
    db.session.execute(_insert(Follower).values(who_id=who_id, whom_id=whom_id).on_conflict_do_nothing())


def unfollow(who_id: int, whom_id: int) -> None:
    """Stop following a user; unfollowing someone not followed is not an error."""
    db.session.execute(delete(Follower.__table__).where(Follower.who_id == who_id, Follower.whom_id == whom_id))


def followed_usernames(user_id: int, limit: int) -> list[str]:
    """Names of the users ``user_id`` follows."""
    query = (
        select(User.username)
        .join(Follower, Follower.whom_id == User.user_id)
        .where(Follower.who_id == user_id)
        .order_by(User.user_id)
        .limit(limit)
    )
    return list(db.session.scalars(query))


def get_latest() -> int:
    """The last ``latest`` value the simulator sent, or -1 before the first."""
    value = db.session.scalar(select(Latest.value).where(Latest.id == 1))
    return -1 if value is None else value


def record_latest(value: int) -> None:
    """Record ``latest`` (last write wins) in its own short transaction.

    Every simulator request writes this one row. Inside the request's own transaction its lock
    would be held through the durable commit and serialise all API writes, so it gets a
    transaction of its own, committed after the request's data. On PostgreSQL that commit does
    not wait for the WAL flush: ``latest`` is a progress marker, and a crash may lose its last
    value (never a message or a follow, which are committed durably first).
    """
    if _dialect() == "postgresql":
        db.session.execute(sql_text("SET LOCAL synchronous_commit TO OFF"))
    stmt = _insert(Latest).values(id=1, value=value)
    db.session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"value": value}))
    db.session.commit()
