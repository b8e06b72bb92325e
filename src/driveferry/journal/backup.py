"""Snapshots of an SQLite journal, and putting one back: the file half of `migrate --journal-backup`.

A relay VM can vanish with its disk. `snapshot` copies a journal that workers may be writing into one
self-contained file (SQLite's online backup API: a consistent copy taken under a read lock, which in
WAL mode never blocks the writers). `restore` checks a downloaded snapshot and moves it into place
atomically. Where the snapshots are stored is the caller's business (migrate/backup.py uploads them
through a provider); this module touches local files only and imports nothing from driveferry but
the error taxonomy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from driveferry.errors import JournalError

_READ_BLOCK = 1024 * 1024
_BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Snapshot:
    """A snapshot file on local disk, its size and SHA-256 (lowercase hex)."""

    path: Path
    size_bytes: int
    sha256: str


def sqlite_path(location: str) -> Path | None:
    """The file of an SQLite journal location (a plain path or `sqlite:///PATH`), None for a server URL."""
    if location.startswith("sqlite:///"):
        return Path(location.removeprefix("sqlite:///")).expanduser().absolute()
    if "://" in location:
        return None
    return Path(location).expanduser().absolute()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, lowercase hex. Raises OSError."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def snapshot(journal: Path, into_dir: Path) -> Snapshot:
    """Copy the live journal at `journal` into a new temporary file in `into_dir` (the caller deletes it).

    The copy is one consistent state of the database, taken while other connections may write, and
    needs no -wal file beside it (its journal mode is set back to DELETE).
    Raises JournalError when the journal cannot be read or the copy cannot be written.
    """
    fd, name = tempfile.mkstemp(prefix=".journal-snapshot-", suffix=".sqlite3", dir=into_dir)
    os.close(fd)
    target = Path(name)
    try:
        # mode=ro: a snapshot must never create or change the journal it copies
        src = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_S)
        try:
            dst = sqlite3.connect(target, timeout=_BUSY_TIMEOUT_S)
            try:
                src.backup(dst)  # all pages in one step: a single consistent read transaction
                dst.execute("PRAGMA journal_mode=DELETE")
            finally:
                dst.close()
        finally:
            src.close()
        return Snapshot(target, target.stat().st_size, file_sha256(target))
    except (sqlite3.Error, OSError) as e:
        target.unlink(missing_ok=True)
        raise JournalError(f"cannot snapshot the journal {journal}: {e}") from e


def check(path: Path, sha256: str | None = None) -> None:
    """Raise JournalError unless `path` is an intact SQLite journal (and has the given SHA-256)."""
    try:
        if sha256 is not None and file_sha256(path) != sha256:
            raise JournalError(f"journal snapshot {path.name}: its SHA-256 is not {sha256} (damaged in transit)")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except (sqlite3.Error, OSError) as e:
        raise JournalError(f"journal snapshot {path.name} is not a readable SQLite database: {e}") from e
    if result is None or result[0] != "ok":
        raise JournalError(f"journal snapshot {path.name} is damaged: {result[0] if result else 'no answer'}")
    if "schema_version" not in tables or "items" not in tables:
        raise JournalError(f"journal snapshot {path.name} is not a driveferry journal")


def _release_leases(path: Path) -> None:
    """In-progress items back to pending, as `Journal.release` does for a clean stop."""
    try:
        conn = sqlite3.connect(path)
        try:
            with conn:
                conn.execute("UPDATE items SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL "
                             "WHERE state = 'in_progress'")
            conn.execute("PRAGMA journal_mode=DELETE")
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise JournalError(f"journal snapshot {path.name}: cannot release its leases: {e}") from e


def restore(downloaded: Path, journal: Path, sha256: str | None = None) -> None:
    """Put a downloaded snapshot in place as the journal at `journal`, atomically.

    `downloaded` must be on the same filesystem as `journal` (a rename). It is checked first (hash,
    integrity, tables); the leases it records are released (they belong to the lost machine, and an
    SQLite journal has no workers elsewhere), keeping each upload session for resuming; a stale -wal/-shm beside the journal path is removed, since SQLite would
    replay it onto the restored file. Raises JournalError, and leaves `journal` untouched, when the
    snapshot is damaged or not a journal, or FileExistsError when a journal appeared meanwhile.
    """
    check(downloaded, sha256)
    if journal.exists():
        raise FileExistsError(f"{journal} exists: not overwriting a journal with a snapshot")
    _release_leases(downloaded)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{journal}{suffix}").unlink()
    try:
        with open(downloaded, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(downloaded, journal)
    except OSError as e:
        raise JournalError(f"cannot put the restored journal at {journal}: {e}") from e
