"""Flask extensions, created unbound and initialised by the app factory."""

import select

from flask import Flask
from flask import current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import Pool


class Base(DeclarativeBase):
    """Declarative base for the models."""


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


def init_api_engine(app: Flask) -> None:
    """Give the simulator API an engine whose connections stay in autocommit mode.

    Each API write is one statement, committed as it runs (api.py), so the API needs no ORM
    session and no transaction. A pool of its own means its connections never switch between
    autocommit and transactions, and the web pages keep the ORM session on ``db.engine``.
    Switching per request and going through the session cost 8-14% of an API request's CPU in
    process (docs/performance.md). SQLite is a single file with a writer lock, not a server:
    there the API shares ``db.engine``'s connections, switched per connection as before.
    """
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite"):
        with app.app_context():
            engine = db.engine.execution_options(isolation_level="AUTOCOMMIT")
    else:
        engine = create_engine(url, isolation_level="AUTOCOMMIT", **app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    app.extensions["minitwit_api_engine"] = engine


def api_engine() -> Engine:
    """The current app's API engine (``init_api_engine``)."""
    return current_app.extensions["minitwit_api_engine"]


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
