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


def _insert(model):
    """Return an INSERT for the session's dialect, which knows ON CONFLICT."""
    dialect = db.session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


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
    db.session.add(Message(author_id=author_id, text=content, pub_date=int(time.time()), flagged=0))


def is_following(who_id: int, whom_id: int) -> bool:
    """Tell whether ``who_id`` follows ``whom_id``."""
    return db.session.get(Follower, (who_id, whom_id)) is not None


def follow(who_id: int, whom_id: int) -> None:
    """Follow a user; following twice keeps one row, even under concurrent requests."""
    db.session.execute(_insert(Follower).values(who_id=who_id, whom_id=whom_id).on_conflict_do_nothing())


def unfollow(who_id: int, whom_id: int) -> None:
    """Stop following a user; unfollowing someone not followed is not an error."""
    db.session.execute(delete(Follower).where(Follower.who_id == who_id, Follower.whom_id == whom_id))


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


def set_latest(value: int) -> None:
    """Record ``latest`` (last write wins) in the current transaction."""
    stmt = _insert(Latest).values(id=1, value=value)
    db.session.execute(stmt.on_conflict_do_update(index_elements=[Latest.id], set_={"value": value}))
