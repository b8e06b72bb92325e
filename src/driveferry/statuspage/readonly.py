"""Opening a journal read-only: `status` and the live page never write to it, not even its schema.

SQLite is opened through a `mode=rw` URI (or `mode=ro` where the file is not writable; neither ever
creates a file: https://www.sqlite.org/uri.html) with `query_only` on, and no journal_mode is set, so
a foreign file is never modified. PostgreSQL
sessions start with `default_transaction_read_only` on. Reads are each one snapshot transaction.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection

from driveferry.errors import JournalError, UserError
from driveferry.journal import schema as t
from driveferry.journal.convert import utc_now
from driveferry.journal.db import Database, safe_label, to_url
from driveferry.journal.db import _reason as db_reason
from driveferry.journal.store import Journal


class ReadOnlyDatabase(Database):
    """A `Database` whose every connection is read-only; `write()` always fails."""

    def __init__(self, url: sa.URL) -> None:  # noqa: D107 - no super().__init__: it would create folders
        self.url = url
        self.label = safe_label(url)
        self.dialect = url.get_backend_name()
        if self.dialect == "sqlite":
            path = Path(url.database or "")
            if not path.is_file():
                raise UserError(f"no journal at {path}; pass --journal with the path 'migrate' used")
            uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode="
            self.engine = sa.create_engine("sqlite://", creator=lambda: _sqlite_ro(uri), pool_pre_ping=False)
            event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        else:
            # added to the URL's own libpq options (e.g. a search_path), which connect_args would replace
            given = url.query.get("options", "")
            options = " ".join([*(given if isinstance(given, tuple) else (given,)),
                                "-c default_transaction_read_only=on"]).strip()
            try:
                self.engine = sa.create_engine(url.difference_update_query(["options"]), pool_pre_ping=True,
                                               connect_args={"connect_timeout": 10, "options": options})
            except ImportError as e:
                raise UserError(f"a PostgreSQL journal needs psycopg ({e}): "
                                "pip install 'driveferry[postgres]'") from e
        self._reader = self.engine.execution_options()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        raise JournalError(f"journal {self.label} is open read-only")
        yield  # pragma: no cover

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except exc.SQLAlchemyError as e:  # the same one-line messages as the writable journal's
            raise JournalError(f"journal {self.label}: {db_reason(e)}") from e


def _sqlite_ro(uri: str) -> Any:
    """A connection that cannot write. Opened `mode=rw` (never creates a file) with query_only on when
    the file is writable: a WAL journal's last reader then removes the -wal and -shm files SQLite
    makes for readers, as a writer would (https://www.sqlite.org/wal.html, "the WAL file is deleted
    when the last connection closes"); `mode=ro` where it is not (a read-only copy or mount)."""
    import sqlite3
    try:
        conn = sqlite3.connect(uri + "rw", uri=True, timeout=30.0, check_same_thread=False, isolation_level=None)
    except sqlite3.OperationalError:
        conn = sqlite3.connect(uri + "ro", uri=True, timeout=30.0, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA query_only=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def open_read_only(location: str) -> Journal:
    """The journal at a path or URL, opened for reading only.

    Raises UserError when there is no such file or the URL is not supported, JournalError when it
    cannot be read, is not a driveferry journal, or was written by a newer driveferry.
    """
    if "://" not in location and not Path(location).expanduser().is_file():
        raise UserError(f"no journal at {location}; pass --journal with the path 'migrate' used")
    db = ReadOnlyDatabase(to_url(location))
    try:
        with db.read() as conn:
            version = t.current_version(conn)
        if version is None:
            raise JournalError(f"{db.label} is not a driveferry journal (no schema_version table)")
        if version > t.SCHEMA_VERSION:
            raise JournalError(f"journal {db.label} has schema version {version}, newer than this driveferry "
                               f"reads ({t.SCHEMA_VERSION}): upgrade driveferry on this machine")
        if version < t.SCHEMA_VERSION:
            raise JournalError(f"journal {db.label} has schema version {version}: run 'migrate' once with "
                               "this driveferry to upgrade it, or use the driveferry that wrote it")
    except BaseException:
        db.dispose()
        raise
    return Journal(db, utc_now)
