"""Shared emulator state: one SQLite database for metadata, blob files, a settable clock, counters, tokens.

Both API models (drive/, graph/) keep their tables in the same database (prefixed `drive_`, `graph_`) and
their content as blob files under DATA/blobs. Everything survives a restart of the emulator, open upload
sessions included. The clock can be advanced through the control endpoint so quota windows and session
expiry can be tested without waiting.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS emu_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS emu_tokens (
    token TEXT PRIMARY KEY, audience TEXT NOT NULL, subject TEXT NOT NULL,
    expires_at REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0
);
"""


class Clock:
    """Real UTC time plus an offset that tests advance (persisted in emu_meta)."""

    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset_s)

    def timestamp(self) -> float:
        return self.now().timestamp()


class Counters:
    """Thread-safe counters the control endpoint reports: requests and bytes per route, faults fired."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = defaultdict(int)
        self.bytes_in: dict[str, int] = defaultdict(int)
        self.bytes_out: dict[str, int] = defaultdict(int)
        self.faults: dict[str, int] = defaultdict(int)
        self.statuses: dict[str, int] = defaultdict(int)

    def add(self, table: str, key: str, n: int = 1) -> None:
        with self._lock:
            getattr(self, table)[key] += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {
                name: dict(getattr(self, name))
                for name in ("requests", "bytes_in", "bytes_out", "faults", "statuses")
            }
        out["total_bytes_in"] = sum(out["bytes_in"].values())
        out["total_bytes_out"] = sum(out["bytes_out"].values())
        return out

    def reset(self) -> None:
        with self._lock:
            for name in ("requests", "bytes_in", "bytes_out", "faults", "statuses"):
                getattr(self, name).clear()


class State:
    """The emulator's persistent state under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.blob_dir = self.data_dir / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.db = sqlite3.connect(self.data_dir / "emulator.sqlite3", check_same_thread=False,
                                  isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self.clock = Clock(float(self.get_meta("clock_offset_s", "0")))
        self.counters = Counters()

    # --- transactions ------------------------------------------------------------------------------

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One serialised transaction (the emulator favours simplicity over write concurrency)."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def query(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return list(self.db.execute(sql, args))

    # --- meta and clock ----------------------------------------------------------------------------

    def get_meta(self, key: str, default: str) -> str:
        rows = self.query("SELECT value FROM emu_meta WHERE key=?", (key,))
        return str(rows[0]["value"]) if rows else default

    def set_meta(self, key: str, value: str) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO emu_meta(key, value) VALUES(?, ?) "
                       "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    def advance_clock(self, seconds: float) -> datetime:
        self.clock.offset_s += seconds
        self.set_meta("clock_offset_s", repr(self.clock.offset_s))
        return self.clock.now()

    # --- blobs -------------------------------------------------------------------------------------

    def new_blob_path(self) -> Path:
        """A fresh blob file name (not created). Blobs are immutable once their item is committed."""
        name = uuid.uuid4().hex
        sub = self.blob_dir / name[:2]
        sub.mkdir(exist_ok=True)
        return sub / name

    def blob_path(self, name: str) -> Path:
        return self.blob_dir / name[:2] / name

    def remove_blob(self, name: str | None) -> None:
        if name:
            try:
                os.unlink(self.blob_path(name))
            except FileNotFoundError:
                pass

    # --- bearer tokens (shared by the Google and Microsoft identity endpoints) ----------------------

    def issue_token(self, audience: str, subject: str, lifetime_s: int = 3600, prefix: str = "emu") -> str:
        token = f"{prefix}-{secrets.token_urlsafe(24)}"
        with self.tx() as db:
            db.execute("INSERT INTO emu_tokens(token, audience, subject, expires_at) VALUES(?,?,?,?)",
                       (token, audience, subject, self.clock.timestamp() + lifetime_s))
        return token

    def check_token(self, token: str, audience: str) -> str | None:
        """The subject of a valid, unexpired, unrevoked token for `audience`, else None."""
        rows = self.query("SELECT subject, expires_at, revoked, audience FROM emu_tokens WHERE token=?",
                          (token,))
        if not rows:
            return None
        row = rows[0]
        if row["revoked"] or row["expires_at"] < self.clock.timestamp():
            return None
        if row["audience"] not in (audience, "*"):
            return None
        return str(row["subject"])

    def revoke_tokens(self, audience: str | None = None) -> int:
        with self.tx() as db:
            if audience is None:
                cur = db.execute("UPDATE emu_tokens SET revoked=1")
            else:
                cur = db.execute("UPDATE emu_tokens SET revoked=1 WHERE audience=?", (audience,))
            return cur.rowcount

    def close(self) -> None:
        with self.lock:
            self.db.close()
