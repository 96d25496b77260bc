"""Build the app a test runs against, and run its ``flask`` commands in-process."""

import contextlib

import sqlalchemy as sa

TEST_SECRET_KEY = "test-secret-key-not-for-production"


def test_config(database_url: str, **overrides) -> dict:
    """The mapping every test app is created with (flaskr's ``test_config``)."""
    from minitwit.config import engine_options

    return {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": database_url,
        # options follow the URL (SQLite's busy timeout is no libpq option)
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
        **overrides,
    }


test_config.__test__ = False  # not a test, despite the name


def make_app(database_url: str, **overrides):
    """Create an app bound to ``database_url``."""
    from minitwit import create_app

    return create_app(test_config(database_url, **overrides))


def dispose(app):
    """Close the app's pooled connections (the ORM's and the API's) so PostgreSQL sessions do not pile up."""
    from minitwit.extensions import db

    with app.app_context():
        db.engine.dispose()
        app.extensions["minitwit_api_engine"].dispose()


def migrate(database_url: str):
    """Bring ``database_url`` to the newest schema with the app's migrate command."""
    app = make_app(database_url)
    result = invoke(app, "migrate")
    dispose(app)
    assert result.exit_code == 0, result.output + repr(result.exception)


def invoke(app, *args: str):
    """Run a ``flask`` command of ``app`` in-process, inside an app context like the CLI."""
    with app.app_context():
        return app.test_cli_runner().invoke(args=list(args))


_TABLES: dict[str, list[str]] = {}


def empty_database(database_url: str):
    """Delete every row (not the schema) so the next test starts from nothing."""
    engine = sa.create_engine(database_url)
    try:
        if database_url not in _TABLES:
            meta = sa.MetaData()
            meta.reflect(engine)
            _TABLES[database_url] = [t.name for t in reversed(meta.sorted_tables) if t.name != "alembic_version"]
        tables = _TABLES[database_url]
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                names = ", ".join(f'"{name}"' for name in tables)
                conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for name in tables:
                    conn.execute(sa.text(f'DELETE FROM "{name}"'))
    finally:
        engine.dispose()


@contextlib.contextmanager
def fresh_app(database_url: str, **overrides):
    """An app on an emptied database, disposed afterwards."""
    empty_database(database_url)
    app = make_app(database_url, **overrides)
    try:
        yield app
    finally:
        dispose(app)
