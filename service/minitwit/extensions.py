"""Flask extensions, created unbound and initialised by the app factory."""

import select

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import Pool


class Base(DeclarativeBase):
    """Declarative base for the models."""


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


@event.listens_for(Pool, "checkout")
def discard_closed_connection(dbapi_connection, connection_record, connection_proxy) -> None:
    """Refuse a pooled PostgreSQL connection the server has closed, without a round trip.

    An idle connection has nothing to read; a readable socket means the server has hung up
    (PostgreSQL restarted, or terminated the backend) and sent its goodbye, or the connection
    is broken. Raising DisconnectionError makes the pool drop it and connect afresh, so a
    database restart costs no request an error once the database is back. ``pool_pre_ping``
    (``DB_POOL_PRE_PING=1``) also catches silent network loss, at one round trip per checkout.
    """
    if not hasattr(dbapi_connection, "pgconn"):  # SQLite: a file, nothing to hang up
        return
    if dbapi_connection.closed:
        raise DisconnectionError("the connection is closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection")
