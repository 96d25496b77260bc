"""A throwaway S3 repository, and a throwaway PostgreSQL that archives its WAL there through pgBackRest.

- ``S3Server``: ``rclone serve s3`` on loopback with a bucket, over TLS signed by a throwaway CA;
  ``halt()`` and ``start()`` make an outage, ``objects()`` reads what the repository holds;
- ``ArchivingPostgres``: a ``ThrowawayPostgres`` with ``archive_mode=on`` and pgBackRest's
  asynchronous ``archive-push`` as ``archive_command``, its stanza created, the repository
  encrypted (aes-256-cbc) as production's; ``pgbackrest(...)`` runs any pgBackRest command on it;
- ``archiving_cluster()``: both for a block, stopped and deleted afterwards.

The certificate is for the host name ``localhost``, which is also the S3 endpoint: pgBackRest 2.45
checks the certificate against the name it connects to and does not accept IP addresses in it, and
``localhost`` resolves to the loopback everywhere without editing /etc/hosts. The server listens
on every loopback address ``localhost`` resolves to (127.0.0.1 alone on the CI machine, also ::1
on many), so pgBackRest reaches it whichever address it tries.
rclone refuses short access keys (InvalidAccessKeyId for "AK,SK"); the generated ones have 20
characters. As root, pgBackRest runs as the cluster's user, like ``archive-push`` under PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

from testkit.ports import free_port
from testkit.postgres import ThrowawayPostgres
from testkit.processes import stop
from testkit.skip import Unavailable

STANZA = "minitwit"
HOST = "localhost"
START_TIMEOUT_S = 30


def find_program(name: str, env: str) -> str:
    """Path of a program from the variable ``env``, the virtualenv (rclone's wheel) or PATH, or raise Unavailable."""
    path = os.environ.get(env) or shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if not path:
        raise Unavailable(f"{name} not installed (or set {env})")
    return path


def make_certificates(directory: pathlib.Path) -> dict[str, pathlib.Path]:
    """A throwaway CA and a server certificate it signed for DNS:localhost; paths of ca, cert and key."""
    openssl = find_program("openssl", "OPENSSL_BIN")
    paths = {name: directory / f"{name}.pem" for name in ("ca", "ca-key", "cert", "key", "csr")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (directory / "san.ext").write_text(f"subjectAltName=DNS:{HOST}\n")
    for args in (
        ["req", "-x509", *ec, "-keyout", paths["ca-key"], "-out", paths["ca"], "-days", "2", "-subj", "/CN=minitwit test CA"],
        ["req", *ec, "-keyout", paths["key"], "-out", paths["csr"], "-subj", f"/CN={HOST}"],
        ["x509", "-req", "-in", paths["csr"], "-CA", paths["ca"], "-CAkey", paths["ca-key"], "-CAcreateserial",
         "-out", paths["cert"], "-days", "2", "-extfile", directory / "san.ext"],
    ):  # fmt: skip
        run_checked([openssl, *args], timeout=30)
    return paths


def loopback_addresses(host: str = HOST) -> list[str]:
    """The addresses ``host`` resolves to (all must be loopback), in a form rclone's --addr takes."""
    found = dict.fromkeys(info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
    if any(not (address.startswith("127.") or address == "::1") for address in found):
        raise Unavailable(f"{host} resolves to {list(found)}, not only to the loopback")
    return [f"[{address}]" if ":" in address else address for address in found]


class S3Server:
    """``rclone serve s3`` over TLS on a free loopback port, with one bucket, files under ``root``."""

    def __init__(self, root: pathlib.Path, bucket: str = "minitwit-backups"):
        self.rclone = find_program("rclone", "RCLONE_BIN")
        self.root, self.bucket = root, bucket
        self.data = root / "s3"
        (self.data / bucket).mkdir(parents=True)
        self.tls = make_certificates(root)
        self.port = free_port()
        self.access_key, self.secret_key = secrets.token_hex(10), secrets.token_hex(20)
        self.proc: subprocess.Popen | None = None

    def start(self) -> S3Server:
        """Start the server (again, on the same port and files) and wait until it answers over TLS."""
        listen = [arg for address in loopback_addresses() for arg in ("--addr", f"{address}:{self.port}")]
        args = [self.rclone, "serve", "s3", self.data, *listen, "--cert", self.tls["cert"], "--key", self.tls["key"]]
        args += ["--auth-key", f"{self.access_key},{self.secret_key}", "--config", self.root / "rclone.conf"]
        with open(self.root / "rclone.log", "ab") as log:
            self.proc = subprocess.Popen([str(arg) for arg in args], stdout=log, stderr=subprocess.STDOUT)
        self._wait_until_up()
        return self

    def _wait_until_up(self):
        """Poll the endpoint until any HTTPS answer (an unsigned request gets a 4xx); raise with the log otherwise."""
        context = ssl.create_default_context(cafile=self.tls["ca"])
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rclone exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                urllib.request.urlopen(f"https://{HOST}:{self.port}/", context=context, timeout=2).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"rclone did not answer on port {self.port} within {START_TIMEOUT_S}s:\n{self.log_tail()}")

    def halt(self):
        """Stop the server, keeping its files: an outage of the repository."""
        if self.proc and self.proc.poll() is None:
            stop(self.proc)

    def objects(self) -> list[pathlib.Path]:
        """Every object in the bucket, as files on disk."""
        return sorted(path for path in (self.data / self.bucket).rglob("*") if path.is_file())

    def log_tail(self) -> str:
        """The end of rclone's log."""
        return (self.root / "rclone.log").read_text(errors="replace")[-3000:]

    def repository_options(self) -> dict[str, str]:
        """pgBackRest's repo1 options for this server (secrets included: they go in a 0600 file)."""
        return {
            "repo1-type": "s3",
            "repo1-s3-endpoint": HOST,
            "repo1-storage-port": str(self.port),
            "repo1-s3-bucket": self.bucket,
            "repo1-s3-region": "us-east-1",
            "repo1-s3-key": self.access_key,
            "repo1-s3-key-secret": self.secret_key,
            "repo1-s3-uri-style": "path",
        }


class ArchivingPostgres(ThrowawayPostgres):
    """A throwaway cluster whose WAL pgBackRest pushes to ``s3`` (stanza ``minitwit``) once started.

    ``archive_timeout`` is PostgreSQL's (seconds); ``options`` add to or override pgBackRest's
    global options, e.g. ``{"archive-timeout": "5", "io-timeout": "5"}`` for a quick failure.
    """

    def __init__(self, s3: S3Server, archive_timeout: int = 55, options: dict | None = None, **kwargs):
        self.pgbackrest_bin = find_program("pgbackrest", "PGBACKREST_BIN")
        super().__init__(**kwargs)
        self.s3, self.archive_timeout = s3, archive_timeout
        self.config = self.root / "pgbackrest.conf"
        self.cipher_pass = secrets.token_urlsafe(32)
        self._write_config(options or {})
        self.archiving = False

    def _write_config(self, options: dict):
        """pgbackrest.conf as production's (encrypted, async archive-push, zstd), in 0600 files this cluster's user owns."""
        home = self.root / "pgbackrest"
        dirs = {name: home / name for name in ("spool", "lock", "log")}
        for path in [home, *dirs.values()]:
            path.mkdir()
            self._give_to_cluster_user(path)
        ca_file = shutil.copy(self.s3.tls["ca"], home / "ca.pem")  # the S3 server's files are root's alone
        settings = {
            **self.s3.repository_options(),
            "repo1-storage-ca-file": str(ca_file),
            "repo1-path": "/minitwit",
            "repo1-cipher-type": "aes-256-cbc",
            "repo1-cipher-pass": self.cipher_pass,
            "repo1-retention-full-type": "time",
            "repo1-retention-full": "14",
            "archive-async": "y",
            "archive-push-queue-max": "1GiB",
            "compress-type": "zst",
            "start-fast": "y",
            "log-level-file": "off",
            **{f"{name}-path": str(path) for name, path in dirs.items()},
            **options,
        }
        cluster = {"pg1-path": self.data, "pg1-port": self.port, "pg1-socket-path": self.root}
        lines = ["[global]", *(f"{k}={v}" for k, v in settings.items()), "", f"[{STANZA}]"]
        self.config.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in cluster.items())]) + "\n")
        self.config.chmod(0o600)
        self._give_to_cluster_user(self.config)

    def _give_to_cluster_user(self, path: pathlib.Path):
        """As root, hand ``path`` to the user the cluster runs as (the owner of its temp dir)."""
        if os.geteuid() == 0:
            owner = self.root.stat()
            os.chown(path, owner.st_uid, owner.st_gid)

    def start(self) -> ArchivingPostgres:
        """Start the cluster; the first time, turn archiving on (a restart) and create the stanza."""
        super().start()
        if not self.archiving:
            command = f"{self.pgbackrest_bin} --config={self.config} --stanza={STANZA} archive-push %p"
            self.sql(
                "ALTER SYSTEM SET archive_mode = 'on'",
                f"ALTER SYSTEM SET archive_command = '{command}'",
                f"ALTER SYSTEM SET archive_timeout = '{self.archive_timeout}s'",
                # As the stack runs it (stack/minitwit.yml says why: archive_timeout holds from the start).
                "ALTER SYSTEM SET checkpoint_timeout = '55s'",
            )
            self.halt()
            super().start()
            self.archiving = True
            self.pgbackrest("stanza-create")
        return self

    def as_cluster_user(self, args: list, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a program as the cluster's user; return its result (output as text) whatever its status."""
        cmd = [*self.prefix, *(str(arg) for arg in args)]
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        return subprocess.run(
            cmd, capture_output=True, text=True, errors="replace", timeout=timeout, check=False, env=env, cwd="/"
        )

    def sql(self, *statements: str) -> str:
        """Run statements with psql as the superuser; return the last one's unaligned rows, raise on an error."""
        args = [self.bindir / "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.root, "-p", self.port]
        args += ["-U", "postgres", "-d", "postgres", *(arg for s in statements for arg in ("-c", s))]
        return _checked(self.as_cluster_user(args), "psql").stdout.strip()

    def pgbackrest(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run ``pgbackrest --config=... --stanza=minitwit <args>``; raise when it fails, unless ``check=False``."""
        result = self.as_cluster_user(
            [self.pgbackrest_bin, f"--config={self.config}", f"--stanza={STANZA}", *args], timeout
        )
        return _checked(result, f"pgbackrest {' '.join(args)}") if check else result

    def info(self) -> dict:
        """``pgbackrest info --output=json`` for the stanza."""
        return json.loads(self.pgbackrest("info", "--output=json").stdout)[0]

    def stop(self):
        """End pgBackRest's commands on this cluster (a background archive-push too), stop the server, delete the files."""
        self.pgbackrest("stop", "--force", check=False, timeout=30)
        super().stop()


def _checked(result: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    """``result`` if it succeeded; otherwise raise with its output (pgBackRest's own redacts the keys)."""
    if result.returncode != 0:
        raise RuntimeError(f"{what} exited with {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def run_checked(args: list, timeout: float) -> subprocess.CompletedProcess:
    """Run a short program to completion, raising with its output if it fails."""
    return _checked(
        subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout), str(args[0])
    )


@contextlib.contextmanager
def archiving_cluster(archive_timeout: int = 55, options: dict | None = None, **kwargs) -> Iterator[ArchivingPostgres]:
    """An S3 server and a PostgreSQL archiving to it, for the block; ``cluster.s3`` is the server.

    ``kwargs`` go to ``ThrowawayPostgres`` (``durable``, ``max_connections``).
    """
    root = pathlib.Path(tempfile.mkdtemp(prefix="minitwit-s3-"))
    s3 = S3Server(root)
    try:
        s3.start()
        cluster = ArchivingPostgres(s3, archive_timeout, options, **kwargs)
        try:
            yield cluster.start()
        finally:
            cluster.stop()
    finally:
        s3.halt()
        shutil.rmtree(root, ignore_errors=True)
