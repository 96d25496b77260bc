"""The simulator API's own pool (extensions.init_api_engine): autocommit for good, sized like the ORM's."""

from helpers.app import fresh_app
from minitwit.extensions import api_engine
from minitwit.extensions import db


def test_postgresql_api_pool_is_separate_autocommit_and_sized_by_the_settings(postgresql_database, monkeypatch):
    """The README's DB_POOL_SIZE/DB_MAX_OVERFLOW apply to both pools; only the API's is in autocommit mode."""
    monkeypatch.setenv("DB_POOL_SIZE", "3")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "1")
    with fresh_app(postgresql_database) as app, app.app_context():
        api, orm = api_engine(), db.engine
        assert api.pool is not orm.pool
        assert (api.pool.size(), api.pool._max_overflow) == (orm.pool.size(), orm.pool._max_overflow) == (3, 1)
        with api.connect() as conn:
            assert conn.connection.dbapi_connection.autocommit is True
        with orm.connect() as conn:
            assert conn.connection.dbapi_connection.autocommit is False


def test_sqlite_api_shares_the_pool(app_factory):
    """SQLite is one file: the API switches the shared pool's connections instead of opening its own."""
    app = app_factory()
    with app.app_context():
        assert api_engine().pool is db.engine.pool
