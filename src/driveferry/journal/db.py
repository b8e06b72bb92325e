"""Connecting to the journal's database: URL rules, per-database settings, transactions, error wrapping.

A plain path is an SQLite file (parent directories created), in WAL mode with a busy timeout, and every
write transaction starts with BEGIN IMMEDIATE so that concurrent writers queue on the busy timeout
instead of failing when a read lock cannot be upgraded. `postgresql://` URLs use the psycopg 3 driver.
Every database error leaves this package as a one-line JournalError, never as a raw traceback.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from driveferry.errors import JournalError, UserError

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
BUSY_TIMEOUT_S = 30.0  # how long an SQLite writer waits for another (a claim or checkpoint is ms)


def to_url(url_or_path: str) -> sa.URL:
    """The SQLAlchemy URL for a journal location. Raises UserError for an unsupported scheme."""
    if not _URL_RE.match(url_or_path):
        path = Path(url_or_path).expanduser().absolute()
        return sa.URL.create("sqlite", database=str(path))
    try:
        url = sa.make_url(url_or_path)
    except exc.ArgumentError as e:
        raise UserError(f"cannot parse journal URL: {e}; use a file path, sqlite:///PATH or "
                        "postgresql://USER@HOST/DB") from None
    backend = url.get_backend_name()
    if backend == "postgres":  # libpq accepts this alias; SQLAlchemy does not
        backend = "postgresql"
    if backend == "postgresql":
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            # Nothing could resume from it, and its connections would not share one database.
            raise UserError("an in-memory journal cannot be resumed: give --journal a file path")
        return url.set(drivername="sqlite")
    raise UserError(f"unsupported journal URL scheme {url.drivername!r}: use a file path, "
                    "sqlite:///PATH or postgresql://USER@HOST/DB")


def safe_label(url: sa.URL) -> str:
    """The location for messages: the file path, or the URL without its password."""
    if url.get_backend_name() == "sqlite":
        return url.database or ""
    return url.render_as_string(hide_password=True)


def _reason(error: BaseException) -> str:
    """One line naming what the database said, with the fix where there is a known one."""
    orig = getattr(error, "orig", None) or error
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    lowered = text.lower()
    if "not a database" in lowered or "malformed" in lowered:
        return f"the file is not a driveferry journal or is corrupt ({text}): restore it or use another --journal"
    if "database is locked" in lowered:
        return (f"{text} after {BUSY_TIMEOUT_S:.0f} s: another process holds the journal; "
                "try again, or use PostgreSQL for many workers")
    if "unable to open" in lowered or "readonly" in lowered:
        return f"{text}: check that the path exists and is writable"
    if isinstance(error, exc.OperationalError):
        return f"{text}: check that the server is running and the URL is right"
    return f"{type(orig).__name__}: {text}"


def refuse_foreign_sqlite(path: Path, label: str) -> None:
    """JournalError for an existing file that is not a driveferry journal (a folder, not SQLite, or an
    SQLite database without the journal's schema_version table), found through a read-only connection
    before anything could change it: the journal's own connections switch a file to WAL mode, which
    rewrites its header (https://www.sqlite.org/wal.html, "persistence of WAL mode")."""
    if path.is_dir():
        raise JournalError(f"journal {label} is a folder: give --journal a file name")
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return  # a new (or empty) journal is created in it
        ro = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except (OSError, sqlite3.Error) as e:
        raise JournalError(f"journal {label}: {_reason(e)}") from e
    try:
        names = {row[0] for row in ro.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as e:
        raise JournalError(f"journal {label}: {_reason(e)}") from e
    finally:
        ro.close()
    if names and "schema_version" not in names:
        raise JournalError(f"{label} is an SQLite database but not a driveferry journal: "
                           "give --journal a new file name")


class Database:
    """An engine plus the transaction discipline of the journal. Safe to share between threads."""

    def __init__(self, url: sa.URL, pool_size: int = 10) -> None:
        self.url = url
        self.label = safe_label(url)
        self.dialect = url.get_backend_name()
        if self.dialect == "sqlite" and url.database:
            refuse_foreign_sqlite(Path(url.database), self.label)
            try:
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise JournalError(f"journal {self.label}: cannot create its folder: {e}") from e
        kwargs: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 2 * pool_size}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
        else:
            # Relay VMs lose their network now and then: test pooled connections before use.
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = {"connect_timeout": 10}
        try:
            self.engine: Engine = sa.create_engine(url, **kwargs)
        except ImportError as e:  # psycopg is an optional dependency
            raise UserError(f"a PostgreSQL journal needs psycopg ({e}): pip install 'driveferry[postgres]'") from e
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        # Reads take a deferred transaction on SQLite (WAL readers never block the writer).
        self._reader = self.engine.execution_options(journal_read=True)
        # SQLite has one writer at a time. Threads of this process queue on this lock, which wakes the
        # next one the moment a commit is done; on SQLite's busy handler they would sleep-poll (1, 2,
        # 5, 10 ... ms), which cost small-file runs more time than the writes themselves. Other
        # processes still meet at the busy timeout.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else contextlib.nullcontext()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on normal exit, rolled back on any exception.

        Raises JournalError for any database error; other exceptions pass through unchanged.
        """
        try:
            with self._write_lock, self.engine.begin() as conn:
                yield conn
        except exc.SQLAlchemyError as e:
            raise JournalError(f"journal {self.label}: {_reason(e)}") from e

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot). Raises JournalError for database errors."""
        try:
            with self._reader.connect() as conn, conn.begin():
                yield conn
        except exc.SQLAlchemyError as e:
            raise JournalError(f"journal {self.label}: {_reason(e)}") from e

    def insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT for `table`, which has on_conflict_do_nothing / on_conflict_do_update."""
        # imported here: the PostgreSQL dialect costs a few MB that an SQLite journal does not need
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql
            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite
        return sqlite.insert(table)

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's implicit BEGIN is always deferred).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL with synchronous=NORMAL stays consistent through a power cut and may lose only the last
        # commits. That is safe here: resume asks the server for the committed offset (never trusts
        # the journal's), and a file finished but not recorded is found by its provenance and skipped.
        # FULL would fsync every claim and checkpoint, which halves small-file throughput.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    read_only = conn.get_execution_options().get("journal_read", False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
