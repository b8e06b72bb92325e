"""Snapshots of an SQLite journal, and putting one back: the file half of `migrate --journal-backup`.

A relay VM can vanish with its disk. `snapshot` copies a journal that workers may be writing into one
self-contained file (SQLite's online backup API: a consistent copy taken under a read lock, which in
WAL mode never blocks the writers). `restore` checks a downloaded snapshot and moves it into place
atomically. Between two full snapshots (bases, gzip-compressed), `write_delta` records only the pages
that changed and `apply_delta` replays them (see the section below). Where the snapshots are stored is the caller's business (migrate/backup.py uploads them
through a provider); this module touches local files only and imports nothing from driveferry but
the error taxonomy.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import sqlite3
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
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


# --- page deltas: what changed between two snapshots ----------------------------------------------------
#
# The online backup API copies the database page by page, so page N of a snapshot is page N of the journal
# at that moment (https://www.sqlite.org/backup.html); two snapshots differ exactly in the pages written
# between them. A delta file is gzip of: _MAGIC, one JSON header line, then (4-byte big-endian page
# number, page bytes) per changed page. Applying it to the earlier snapshot gives the later one byte
# for byte, which the header's `result` SHA-256 proves.

_MAGIC = b"DFJDELTA1\n"
_PGNO = struct.Struct(">I")


@dataclass(frozen=True)
class Pages:
    """The page size of a snapshot and a 16-byte BLAKE2b digest of each of its pages."""

    page_size_bytes: int
    digests: tuple[bytes, ...]


@dataclass(frozen=True)
class Packed:
    """A file written for upload (a compressed base or a delta): path, size, SHA-256 of its bytes."""

    path: Path
    size_bytes: int
    sha256: str


def _page_size(path: Path) -> int:
    with open(path, "rb") as fh:
        header = fh.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise JournalError(f"{path.name} is not an SQLite database")
    size = int.from_bytes(header[16:18], "big")  # https://www.sqlite.org/fileformat.html: 1 means 65536
    return 65536 if size == 1 else size


def _pages_of(path: Path) -> Iterator[bytes]:
    size = _page_size(path)
    with open(path, "rb") as fh:
        while page := fh.read(size):
            yield page


def _digest(page: bytes) -> bytes:
    return hashlib.blake2b(page, digest_size=16).digest()


def page_digests(path: Path) -> Pages:
    """The page digests of the snapshot at `path`. Raises JournalError, OSError."""
    return Pages(_page_size(path), tuple(_digest(p) for p in _pages_of(path)))


def _packed(path: Path) -> Packed:
    return Packed(path, path.stat().st_size, file_sha256(path))


def compress(snapshot_path: Path, out: Path) -> Packed:
    """gzip the snapshot into `out` (a full base). Raises OSError."""
    with open(snapshot_path, "rb") as src, gzip.open(out, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, _READ_BLOCK)
    return _packed(out)


def decompress(packed: Path, out: Path) -> None:
    """Undo `compress`. Raises JournalError for a file that is not gzip."""
    try:
        with gzip.open(packed, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, _READ_BLOCK)
    except (OSError, EOFError, zlib.error) as e:
        raise JournalError(f"journal base {packed.name} cannot be decompressed: {e}") from e


def write_delta(snap: Snapshot, previous: Pages, previous_sha256: str, out: Path) -> tuple[Packed, Pages, int]:
    """The pages of `snap` that differ from `previous`, as a delta file at `out`. Returns the file, the
    new page digests and how many pages changed. Raises JournalError, OSError."""
    digests: list[bytes] = []
    changed = 0
    header = {"page_size": previous.page_size_bytes, "prev": previous_sha256, "result": snap.sha256,
              "size": snap.size_bytes}
    if _page_size(snap.path) != previous.page_size_bytes:
        raise JournalError("the journal's page size changed; a new full base is needed")
    with gzip.open(out, "wb", compresslevel=6) as fh:
        fh.write(_MAGIC + json.dumps(header).encode() + b"\n")
        for number, page in enumerate(_pages_of(snap.path), start=1):
            digest = _digest(page)
            digests.append(digest)
            if number > len(previous.digests) or previous.digests[number - 1] != digest:
                fh.write(_PGNO.pack(number) + page)
                changed += 1
    return _packed(out), Pages(previous.page_size_bytes, tuple(digests)), changed


def apply_delta(db: Path, delta: Path, expected_prev: str | None) -> str:
    """Write the delta's pages into the snapshot file `db` and cut it to the delta's size. Returns the
    SHA-256 the result must have. `expected_prev` (the result of the delta before, when known) must be
    the delta's `prev`: a gap in the chain is refused. Raises JournalError."""
    try:
        with gzip.open(delta, "rb") as fh:
            if fh.read(len(_MAGIC)) != _MAGIC:
                raise JournalError(f"{delta.name} is not a driveferry journal delta")
            header = json.loads(fh.readline())
            if expected_prev is not None and header["prev"] != expected_prev:
                raise JournalError(f"{delta.name} does not follow the delta before it")
            size = int(header["page_size"])
            with open(db, "r+b") as out:
                while number := fh.read(_PGNO.size):
                    page = fh.read(size)
                    if len(number) != _PGNO.size or len(page) != size:
                        raise JournalError(f"{delta.name} is truncated")
                    out.seek((_PGNO.unpack(number)[0] - 1) * size)
                    out.write(page)
                out.truncate(int(header["size"]))
            return str(header["result"])
    except (OSError, EOFError, zlib.error, ValueError, KeyError) as e:
        raise JournalError(f"journal delta {delta.name} is unreadable: {e}") from e


# --- the daily cost, for `status` -----------------------------------------------------------------------

_DAY_S = 86400.0


def cost_log(journal: Path) -> Path:
    """The file beside the journal where each backup upload's time and size are logged."""
    return journal.with_name(journal.name + ".backups.json")


def record_upload(journal: Path, at: datetime, size_bytes: int) -> None:
    """Log one backup upload; entries older than a day are dropped. A log that cannot be written costs
    only the figure in `status`, never the backup."""
    now = at.timestamp()
    entries = [e for e in _read_log(journal) if now - e[0] < _DAY_S] + [(now, size_bytes)]
    with contextlib.suppress(OSError):
        cost_log(journal).write_text(json.dumps([[t, n] for t, n in entries]))


def daily_cost(journal: Path, now: datetime) -> tuple[int, int] | None:
    """(bytes uploaded, uploads) by journal backups in the day before `now`; None when none are logged."""
    entries = _read_log(journal)
    if not entries:
        return None
    recent = [n for t, n in entries if now.timestamp() - t < _DAY_S]
    return sum(recent), len(recent)


def _read_log(journal: Path) -> list[tuple[float, int]]:
    try:
        raw = json.loads(cost_log(journal).read_text())
        return [(float(t), int(n)) for t, n in raw]
    except (OSError, ValueError, TypeError):
        return []
