"""A throwaway PostgreSQL server for tests, and a fresh schema per test.

Fixtures (import them into a conftest.py: `from pg import pg_server, pg_url  # noqa: F401`):

* `pg_server` (session): the base URL of a server. DRIVEFERRY_TEST_PG_URL wins when set; otherwise a
  cluster is created with initdb in a temporary directory and started with pg_ctl on a free localhost
  port (as the `postgres` user when we are root: initdb refuses to run as root), and removed at the end.
* `pg_url`: a URL whose search_path is a schema of its own, dropped after the test.

Without PostgreSQL server binaries the tests skip with the reason, except under CI=true, where they
fail: CI must provide PostgreSQL (Debian/Ubuntu: `apt-get install -y postgresql`).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from driveferry.journal.db import to_url

PG_URL_ENV = "DRIVEFERRY_TEST_PG_URL"
_INSTALL_HINT = ("install the PostgreSQL server (Debian/Ubuntu: apt-get install -y postgresql) "
                 f"or set {PG_URL_ENV}=postgresql://USER:PASSWORD@HOST:PORT/DB")


def find_pg_bin() -> Path | None:
    """The directory holding initdb and pg_ctl: PATH first, then the usual install locations
    (newest version first). None when there is none."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    versioned.sort(key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0, reverse=True)
    candidates += [Path(p) for p in versioned]
    candidates += [Path("/usr/local/bin"), Path("/usr/local/pgsql/bin"), Path("/opt/homebrew/bin")]
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def unavailable(reason: str) -> None:
    """Skip, or fail under CI=true: CI must test against PostgreSQL, not quietly skip it."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A PostgreSQL cluster in a temporary directory, trust authentication, localhost only."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="driveferry-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            # mkdtemp is mode 0700: hand the whole directory to the postgres user.
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=self.root)

    def start(self) -> None:
        """initdb + pg_ctl start, waiting until the server accepts connections. Raises RuntimeError."""
        init = self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                         "--locale=C", "--no-sync")
        if init.returncode:
            raise RuntimeError(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
        # Durability is irrelevant for a throwaway server; speed is not.
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        start = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                          "-t", "30", "start")
        if start.returncode:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {start.stderr.strip()}\n{log}")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The base URL of a PostgreSQL server for this test session (see the module docstring)."""
    env_url = os.environ.get(PG_URL_ENV)
    if env_url:
        yield env_url
        return
    bin_dir = find_pg_bin()
    if bin_dir is None:
        unavailable("no PostgreSQL server binaries (initdb, pg_ctl) in PATH, /usr/lib/postgresql/*/bin "
                    f"or /usr/local/bin: {_INSTALL_HINT}")
    assert bin_dir is not None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            unavailable(f"running as root and there is no 'postgres' user to run initdb as: {_INSTALL_HINT}")
    cluster = Cluster(bin_dir)
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        cluster.stop()
        pytest.fail(f"could not start a throwaway PostgreSQL from {bin_dir}: {e}", pytrace=False)
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture()
def pg_url(pg_server: str) -> Iterator[str]:
    """A URL on the test server whose tables go into a fresh schema, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(to_url(pg_server), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = sa.make_url(pg_server).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()
