"""Local test infrastructure shared by tests/, e2e/ and bench/ (drills/ drives the Swarm stack, not local servers).

What a check needs to run the real things on this machine, written once:

- ``skip``: ``STRICT``, ``Unavailable``, ``skip_or_fail`` (pytest) and ``skipped_exit_status``
  (command-line tools): a missing tool skips, or fails under ``MINITWIT_STRICT=1`` as in CI;
- ``ports``: ``free_port`` on 127.0.0.1;
- ``processes``: run a server program for a block and stop it with the one stop policy;
- ``postgres``: a throwaway PostgreSQL cluster and databases in it;
- ``app``: the app served the production way (migrate, gunicorn, wait for /health);
- ``observatory``: the MDN HTTP Observatory scanner, installed in a cache outside git and run
  against a host (``scripts/observatory.sh``; its local edge test is tests/infra/test_traefik_headers.py);
- ``pgbackrest``: a throwaway S3 server (``rclone serve s3`` over TLS) and a PostgreSQL archiving its
  WAL to it through pgBackRest (tests/backup, bench/archiving.py);
- ``aws``: a local AWS API (moto on loopback, answering like AWS where amazon.aws reads it) and what
  ``scripts/infra-test.sh`` asks of it: every resource of every kind, ours by their tags.

It may import the standard library, psycopg, pytest (only inside ``skip_or_fail``), boto3 and moto
(only inside ``aws``'s functions), never
tests/, e2e/, bench/ or drills/; it runs the app in its own processes and never imports
``minitwit``, so ``service/`` stays free of test code and the other way round.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICE_DIR = REPO_ROOT / "service"
