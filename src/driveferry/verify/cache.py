"""A persistent cache of local file hashes, so a re-run of verify re-reads only what changed.

One SQLite file (default `~/.cache/driveferry/hashcache.sqlite3`, or `$XDG_CACHE_HOME/driveferry/...`;
`DRIVEFERRY_HASH_CACHE` or the constructor's `path` override it). A row is valid for one state of one
file: (device, inode, size, mtime_ns, ctime_ns). Any write changes mtime or ctime, and a rename keeps the
inode, so a moved file stays cached. Rows are stored per (device, inode): a changed file replaces its row
instead of piling up stale ones.

Racy entries: a file written within the filesystem's timestamp granularity of being hashed could be
rewritten again with identical size and times (git's "racy clean" problem; FAT/FUSE stamp in seconds).
A row is trusted only if the file's mtime/ctime were at least `racy_window_s` older than the moment
hashing began; otherwise the file is hashed again next time (and then cached for good).

Device and inode numbers are unsigned 64-bit values, and FUSE filesystems use all 64 bits (rclone's
inode numbers are path hashes, often above 2**63), while an SQLite INTEGER is signed 64-bit. They are
stored as their signed two's-complement value (`to_sqlite_int`), which is the identity below 2**63.

A verify run computes one hash, chosen by this CPU's speeds (`verify.scan.choose_hash`). Where two of a
remote's hashes run at close speeds (SHA-1 and SHA-256 with SHA-NI: 0.49 and 0.55 s/GiB), a timing
taken under load picks either, and a run that picked the other one found no row it could use and hashed
the whole tree again. So the cache also keeps the choice made for each set of remote hash types
(`choice`), and every later run here computes the same hash and is answered by its rows.

Rows of deleted files are never looked up again; `prune(unseen_for_s)` drops rows no scan has used
for that long. The schema carries a version (PRAGMA user_version). Version 1 stored the same columns
and could only ever hold numbers below 2**63 (larger ones failed to insert), where the signed
encoding changes nothing, so a version-1 cache is kept and relabelled; a cache of any other version
is discarded and rebuilt, since everything in it can be recomputed.

The cache only stores what we computed from local bytes; it never holds a remote's hash.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from driveferry.integrity.hashes import HashType

__all__ = ["FileKey", "ZeroFacts", "HashCache", "default_cache_path", "to_sqlite_int", "DEFAULT_RACY_WINDOW_S"]

DEFAULT_RACY_WINDOW_S = 2.0  # FAT and some FUSE mounts stamp mtimes with 2 s / 1 s resolution
_COMMIT_EVERY = 512
_SCHEMA_VERSION = 2
_COMPATIBLE_VERSIONS = (1,)  # versions whose rows are valid as they are (see the module docstring)
_U64 = 1 << 64


@dataclass(frozen=True)
class FileKey:
    """The identity of one state of one local file."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


@dataclass(frozen=True)
class ZeroFacts:
    """What a scan learned about zero bytes in a local file.

    zero_tail_bytes: length of the run of 0x00 bytes that ends the file (the whole size if all-zero).
    all_zero: size > 0 and every byte is 0x00 (an empty file is not "all zero").
    hole_count/hole_bytes: sparse holes the filesystem reports (SEEK_HOLE), including a trailing one.
    """

    zero_tail_bytes: int = 0
    all_zero: bool = False
    hole_count: int = 0
    hole_bytes: int = 0


def to_sqlite_int(n: int) -> int:
    """An unsigned 64-bit number (st_dev, st_ino) as the signed 64-bit value SQLite can store.

    Numbers below 2**63 are unchanged; 2**63..2**64-1 map to -2**63..-1 (two's complement), so the
    mapping is one-to-one over the unsigned range. Raises ValueError outside 0..2**64-1.
    """
    if not 0 <= n < _U64:
        raise ValueError(f"not an unsigned 64-bit number: {n}")
    return n - _U64 if n >= _U64 >> 1 else n


def default_cache_path() -> Path:
    """`$DRIVEFERRY_HASH_CACHE`, else `$XDG_CACHE_HOME/driveferry/hashcache.sqlite3` (~/.cache by default)."""
    explicit = os.environ.get("DRIVEFERRY_HASH_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "driveferry" / "hashcache.sqlite3"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
  device INTEGER NOT NULL, inode INTEGER NOT NULL,  -- to_sqlite_int(st_dev), to_sqlite_int(st_ino)
  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
  recorded_ns INTEGER NOT NULL,  -- when hashing began (for the racy check)
  seen_ns INTEGER NOT NULL,      -- last time a scan used this row (for prune)
  hashes TEXT NOT NULL,          -- JSON {hash type: lowercase hex}
  zero_tail INTEGER NOT NULL, all_zero INTEGER NOT NULL, hole_count INTEGER NOT NULL,
  hole_bytes INTEGER NOT NULL,
  PRIMARY KEY (device, inode)
)
"""
# Added within schema version 2: a cache without it gains it, and older code ignores it.
_CHOICES = """
CREATE TABLE IF NOT EXISTS choices (
  remote TEXT PRIMARY KEY,  -- the hash types a remote reports, sorted, comma-separated
  kind TEXT NOT NULL        -- the one hash verify computes against such a remote on this machine
)
"""


class HashCache:
    """Thread-safe get/put of (hashes, zero facts) by FileKey. Use as a context manager or call close().

    `get` returns None unless every requested hash type is stored for exactly this key and the entry is
    not racy. `put` merges new hash types into an existing row for the same key. Writes are batched;
    `commit()` flushes them (scan calls it at the end).
    """

    def __init__(self, path: Path | str | None = None, *, racy_window_s: float = DEFAULT_RACY_WINDOW_S) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.racy_window_ns = int(racy_window_s * 1e9)
        # One connection shared under a lock: scan calls get/put from its coordinating thread only,
        # but the lock keeps other callers honest. WAL lets two verify runs share the file.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._unsaved = 0
        self._seen: list[tuple[int, int, int]] = []  # (seen_ns, device, inode) of hits, written at commit
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version != _SCHEMA_VERSION:
                if version not in _COMPATIBLE_VERSIONS:
                    self._db.execute("DROP TABLE IF EXISTS files")
                self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            self._db.execute(_SCHEMA)
            self._db.execute(_CHOICES)
            self._db.execute("BEGIN")

    def choice(self, remote: Collection[HashType], choose: Callable[[Collection[HashType]], HashType]) -> HashType:
        """The hash to compute against a remote that reports `remote`: the one stored for that set, else
        `choose(remote)`, stored for the runs after this one (a choice only ever costs speed, never
        correctness: the stored kind is one the remote reports)."""
        name = ",".join(sorted(k.value for k in remote))
        with self._lock:
            row = self._db.execute("SELECT kind FROM choices WHERE remote=?", (name,)).fetchone()
        known = {k.value: k for k in remote}
        if row is not None and row[0] in known:  # else a kind this version does not know: choose again
            return known[row[0]]
        kind = choose(remote)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO choices VALUES (?,?)", (name, kind.value))
            # committed at once: the run does not hold the write lock from its start (another verify
            # sharing the cache would wait), and the choice stands even if this run is killed
            self._commit_locked()
        return kind

    def get(self, key: FileKey, kinds: Collection[HashType]) -> tuple[dict[HashType, str], ZeroFacts] | None:
        device, inode = _ident(key)
        with self._lock:
            row = self._db.execute(
                "SELECT size, mtime_ns, ctime_ns, recorded_ns, hashes, zero_tail, all_zero, hole_count,"
                " hole_bytes FROM files WHERE device=? AND inode=?", (device, inode)).fetchone()
        if row is None or (row[0], row[1], row[2]) != (key.size, key.mtime_ns, key.ctime_ns):
            return None
        if row[3] - max(key.mtime_ns, key.ctime_ns) < self.racy_window_ns:
            return None
        stored = {HashType(k): v for k, v in json.loads(row[4]).items()}
        if any(k not in stored for k in kinds):
            return None
        with self._lock:
            self._seen.append((time.time_ns(), device, inode))
            if len(self._seen) >= _COMMIT_EVERY:  # a warm run of a big tree: memory stays bounded
                self._commit_locked()
        return {k: stored[k] for k in kinds}, ZeroFacts(row[5], bool(row[6]), row[7], row[8])

    def put(self, key: FileKey, hashes: Mapping[HashType, str], zeros: ZeroFacts, *, recorded_ns: int) -> None:
        """Store hashes computed from bytes read at or after `recorded_ns` (time.time_ns())."""
        device, inode = _ident(key)
        with self._lock:
            row = self._db.execute(
                "SELECT size, mtime_ns, ctime_ns, hashes FROM files WHERE device=? AND inode=?",
                (device, inode)).fetchone()
            merged: dict[str, str] = {}
            if row is not None and (row[0], row[1], row[2]) == (key.size, key.mtime_ns, key.ctime_ns):
                merged.update(json.loads(row[3]))
            merged.update({k.value: v for k, v in hashes.items()})
            self._db.execute(
                "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (device, inode, key.size, key.mtime_ns, key.ctime_ns, recorded_ns, time.time_ns(),
                 json.dumps(merged, sort_keys=True), zeros.zero_tail_bytes, int(zeros.all_zero),
                 zeros.hole_count, zeros.hole_bytes))
            self._unsaved += 1
            if self._unsaved >= _COMMIT_EVERY:
                self._commit_locked()

    def commit(self) -> None:
        with self._lock:
            self._commit_locked()

    def prune(self, unseen_for_s: float) -> int:
        """Delete rows no scan has used (hit or stored) for `unseen_for_s` seconds. Returns rows deleted."""
        cutoff = time.time_ns() - int(unseen_for_s * 1e9)
        with self._lock:
            self._commit_locked()
            n = self._db.execute("DELETE FROM files WHERE seen_ns < ?", (cutoff,)).rowcount
            self._commit_locked()
        return int(n)

    def _commit_locked(self) -> None:
        if self._seen:
            self._db.executemany("UPDATE files SET seen_ns=? WHERE device=? AND inode=?", self._seen)
            self._seen.clear()
        self._db.execute("COMMIT")
        self._db.execute("BEGIN")
        self._unsaved = 0

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM files").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._commit_locked()
            self._db.execute("COMMIT")
            self._db.close()

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _ident(key: FileKey) -> tuple[int, int]:
    """The (device, inode) columns of a row for `key`."""
    return to_sqlite_int(key.device), to_sqlite_int(key.inode)
