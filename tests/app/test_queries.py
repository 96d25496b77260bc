"""Timelines stay cheap as data grows: a constant number of SQL queries per page and API read
(no N+1, counted with SQLAlchemy events), and on PostgreSQL each timeline query is answered
through an index (EXPLAIN on a table big enough for the planner to care)."""

import contextlib
import json

import pytest
from helpers.api import API_AUTH
from helpers.app import fresh_app
from helpers.data import cached_hash
from helpers.data import insert_messages
from helpers.data import insert_users
from helpers.data import sql
from helpers.ui import login
from sqlalchemy import event

READS = {
    "public": ("/public", {}),
    "user page": ("/alice", {}),
    "api msgs": ("/api/msgs?no=100", API_AUTH),
    "api user msgs": ("/api/msgs/alice?no=100", API_AUTH),
    "api follows": ("/api/fllws/alice?no=100", API_AUTH),
    "api latest": ("/api/latest", {}),
}


@contextlib.contextmanager
def recorded_statements(app):
    """Collect (statement, parameters) of every SQL statement the app sends while active.

    On PostgreSQL the API has an engine of its own; on SQLite it shares ``db.engine``'s pool and
    events (an option engine), so it is listened to only when it is a separate engine.
    """
    from minitwit.extensions import db

    with app.app_context():
        engines = [db.engine]
        api_engine = app.extensions["minitwit_api_engine"]
        if api_engine.pool is not db.engine.pool:
            engines.append(api_engine)
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def query_count(app, client, path, headers) -> int:
    """How many SQL statements one GET of ``path`` runs (it must answer 200)."""
    with recorded_statements(app) as statements:
        response = client.get(path, headers=headers)
    assert response.status_code == 200, (path, response.status_code)
    return len(statements)


def grow(app, users: int, messages_each: int):
    """Add ``users`` more users with messages, all followed by alice."""
    names = [f"user{n}" for n in range(users)]
    insert_users(app, names)
    for name in names:
        insert_messages(app, name, messages_each)
    sql(
        app,
        "INSERT INTO follower (who_id, whom_id) SELECT a.user_id, u.user_id FROM"
        " \"user\" a, \"user\" u WHERE a.username = 'alice' AND u.username LIKE 'user%'",
    )


def test_every_read_runs_a_constant_number_of_queries(app):
    insert_users(app, ["alice"])
    insert_messages(app, "alice", 2)
    anonymous, alice = app.test_client(), app.test_client()
    login(alice, "alice", "default")
    pages = {**READS, "home": ("/", {}), "user page logged in": ("/alice", {})}
    clients = {"home": alice, "user page logged in": alice}

    def counts():
        return {
            label: query_count(app, clients.get(label, anonymous), path, headers)
            for label, (path, headers) in pages.items()
        }

    small = counts()
    grow(app, users=12, messages_each=40)
    assert counts() == small
    assert max(small.values()) <= 4, small  # one lookup or two, the read, and the session's user


# --- PostgreSQL: the planner uses the indexes --------------------------------------------


def plan_nodes(plan: dict):
    """Yield every node of an EXPLAIN (FORMAT JSON) plan tree."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def explain(app, statement: str, parameters) -> list[dict]:
    """The plan nodes PostgreSQL chooses for one recorded statement."""
    from minitwit.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        result = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
        document = result.scalar()
    document = json.loads(document) if isinstance(document, str) else document
    return list(plan_nodes(document[0]["Plan"]))


def seed_volume(app):
    """200 users, 20,000 messages (1% flagged), user1 follows 100 users; then ANALYZE."""
    insert_users(app, [f"user{n}" for n in range(1, 201)], pw_hash=cached_hash("default"))
    sql(
        app,
        "INSERT INTO message (author_id, text, pub_date, flagged)"
        " SELECT (SELECT min(user_id) FROM \"user\") + i % 200, 'message ' || i, 1000000 + i,"
        " CASE WHEN i % 100 = 0 THEN 1 ELSE 0 END FROM generate_series(1, 20000) AS i",
    )
    sql(
        app,
        'INSERT INTO follower (who_id, whom_id) SELECT a.user_id, u.user_id FROM "user" a, "user" u'
        " WHERE a.username = 'user1' AND u.user_id BETWEEN a.user_id + 1 AND a.user_id + 100",
    )
    sql(app, "ANALYZE")


@pytest.fixture
def pg_app(postgresql_database):
    """The app on an emptied PostgreSQL database."""
    with fresh_app(postgresql_database) as app:
        yield app


@pytest.mark.parametrize(
    "path, headers",
    [
        ("/public", {}),
        ("/user7", {}),
        ("/", {}),
        ("/api/msgs?no=100", API_AUTH),
        ("/api/msgs/user7?no=100", API_AUTH),
    ],
)
def test_timeline_queries_use_an_index_on_postgresql(pg_app, path, headers):
    seed_volume(pg_app)
    client = pg_app.test_client()
    login(client, "user1", "default")
    with recorded_statements(pg_app) as statements:
        assert client.get(path, headers=headers).status_code == 200
    timeline = [(s, p) for s, p in statements if "FROM message" in s and "ORDER BY" in s]
    assert len(timeline) == 1, statements
    nodes = explain(pg_app, *timeline[0])
    seq_scans = [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "message"]
    assert not seq_scans, nodes
    indexes = {n.get("Index Name") for n in nodes}
    assert indexes & {"ix_message_public", "ix_message_author_id_pub_date"}, nodes
