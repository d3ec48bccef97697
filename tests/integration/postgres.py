"""A throwaway PostgreSQL cluster for integration tests (issue 16).

Debian's ``postgresql`` package provides the binaries (``make test`` installs it when
``initdb`` is missing). The cluster lives in a temporary directory: ``initdb`` there,
``pg_ctl start`` on 127.0.0.1 with a free port, its Unix socket in the same directory (not
the system's /var/run/postgresql), trust authentication for loopback and that socket only.
PostgreSQL refuses to run as root, so as root every server command runs as the ``postgres``
user through ``runuser``. Readiness is the server's own: ``pg_ctl start -w`` returns once
the postmaster reports it accepts connections, then ``pg_isready`` confirms on the TCP port.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

__all__ = ["PostgresCluster", "database", "find_bindir", "postgres_cluster", "schema",
           "sequencer"]

_START_ATTEMPTS = 5  # a free port can be taken by someone else before the server binds it


def find_bindir() -> Path | None:
    """The newest Debian PostgreSQL bin directory, else the one ``initdb`` on PATH is in."""
    def major(path: str) -> int:
        version = Path(path).parent.name
        return int(version) if version.isdigit() else -1

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresCluster:
    """One PostgreSQL server in a temporary directory; :meth:`stop` removes everything."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="sealtrail-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        os.chmod(self.root, 0o700)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--no-locale",
                  "-E", "UTF8", "--auth-local=trust", "--auth-host=reject")
        # Trust only the cluster's own socket and loopback; nothing else may connect.
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n")
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bindir / tool), *args]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=check, cwd=self.root)

    @property
    def dsn(self) -> str:
        """A libpq connection string for the superuser's ``postgres`` database."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def start(self) -> None:
        """Start the server (on the same port as before, if it ran already) and wait until
        it accepts connections."""
        attempts = 1 if self.port else _START_ATTEMPTS
        output = ""
        for _ in range(attempts):
            port = self.port or _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -c port={port} "
                       f"-c unix_socket_directories={self.root} -c max_connections=200")
            done = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                             "-l", str(self.log), "-o", options, check=False)
            output = done.stdout + done.stderr
            if done.returncode == 0:
                self.port = port
                ready = self._run("pg_isready", "-h", "127.0.0.1", "-p", str(port),
                                  "-t", "30", check=False)
                if ready.returncode == 0:
                    return
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {output}\n{tail}")

    def crash(self) -> None:
        """Stop the server the way a crash does (``-m immediate``: no checkpoint, no clean
        shutdown; the next start replays the WAL)."""
        self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data),
                          check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One throwaway cluster for the session (tests isolate themselves by schema)."""
    bindir = find_bindir()
    if bindir is None:  # `make test` installs it; a bare pytest run may lack it
        pytest.skip("PostgreSQL is not installed (Debian's postgresql package; make test "
                    "installs it)")
    cluster = PostgresCluster(bindir)
    try:
        yield cluster
    finally:
        cluster.stop()


_databases = itertools.count()


@pytest.fixture
def database(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh, empty database of the cluster: its libpq URL (no password: the cluster
    trusts loopback). An instance's schema names are fixed, so instances never share one."""
    name = f"db_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgres_cluster.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@127.0.0.1:{postgres_cluster.port}/{name}"
    with psycopg.connect(postgres_cluster.dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


_schemas = itertools.count()


@pytest.fixture
def schema() -> str:
    """A fresh schema name per test: one log each, no cleanup between tests needed."""
    return f"t{os.getpid()}_{next(_schemas)}"


@pytest.fixture
def sequencer(postgres_cluster: PostgresCluster, schema: str) -> Iterator[Any]:
    """A PostgresSequencer on the test's schema: the name the storage contract tests of
    tests/unit/log take their driver by, so modules that import them run them here."""
    from sealtrail.log.storage.postgres import PostgresSequencer

    seq = PostgresSequencer(postgres_cluster.dsn, schema=schema)
    yield seq
    seq.close()
