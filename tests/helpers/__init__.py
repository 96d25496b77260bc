"""Test helpers, one module per job, so the test files read like the original MiniTwit tests.

- ``app``: build the app for a test (``make_app``, ``test_config``) and run its CLI in-process;
- ``ui``: the web form actions (``register(client, "foo", "default")``, ``login``...);
- ``api``: one simulator API client over the Flask test client or real HTTP, and API factories;
- ``data``: direct database access for what the public interfaces cannot show;
- ``programs``: real programs (Traefik, Prometheus...) found, started and asked over HTTP.

Servers, PostgreSQL, ports and skipping live in the ``testkit`` package, shared with e2e/ and bench/.
"""
