"""Shared emulator state: one SQLite database for metadata, blob files, a settable clock, counters, tokens.

Both API models (drive/, graph/) keep their tables in the same database (prefixed `drive_`, `graph_`) and
their content as blob files under DATA/blobs. Everything survives a restart of the emulator, open upload
sessions included. The clock can be advanced through the control endpoint, and scaled (run k times faster
than wall time), so quota windows, token expiry, rate limits and session expiry can be tested without
waiting. `CALLER` names the API request a handler thread is serving (route, user, OAuth client), for the
model rules that depend on who asks (Drive appProperties are private to the OAuth client that wrote them).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS emu_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS emu_tokens (
    token TEXT PRIMARY KEY, audience TEXT NOT NULL, subject TEXT NOT NULL,
    expires_at REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, client_id TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True)
class TokenInfo:
    """Who a valid bearer token speaks for: the user (subject) and the OAuth client it was issued to
    ("" when the issuer did not say, e.g. tokens minted directly by tests)."""

    subject: str
    client_id: str = ""


@dataclass(frozen=True)
class Caller:
    """The API request the current handler thread serves (set by the realism hook before each handler)."""

    route: str
    user: str | None = None
    client_id: str | None = None


CALLER: ContextVar[Caller | None] = ContextVar("driveferry_emulator_caller", default=None)


class Clock:
    """Emulated UTC time: now = start + offset + (wall - wall_start) * scale.

    `offset_s` is what tests add (`advance`, persisted in emu_meta); `scale` k makes emulated time run
    k times wall time (realism profiles: a 315 s Retry-After then costs 315/k wall seconds to a client
    that divides its waits by k). Changing the scale keeps `now()` continuous. With scale 1 this is
    real time plus the offset, as it always was.
    """

    def __init__(self, offset_s: float = 0.0, scale: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._wall_start = time.time()
        self._start = self._wall_start
        self._offset_s = offset_s
        self.scale = scale

    def timestamp(self) -> float:
        """Emulated POSIX seconds."""
        with self._lock:
            return self._start + self._offset_s + (time.time() - self._wall_start) * self.scale

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    @property
    def offset_s(self) -> float:
        """Emulated minus wall time, in seconds (what `GET /_emulator/clock` reports)."""
        return self.timestamp() - time.time()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset_s += seconds

    def set_scale(self, scale: float) -> None:
        """Run `scale` times wall time from now on (now() does not jump)."""
        if not scale > 0:
            raise ValueError("clock scale must be positive")
        with self._lock:
            wall = time.time()
            self._start += (wall - self._wall_start) * self.scale
            self._wall_start = wall
            self.scale = scale


_TABLES = ("requests", "bytes_in", "bytes_out", "faults", "statuses", "realism")


class Counters:
    """Thread-safe counters the control endpoint reports: requests and bytes per route, faults fired,
    realism behaviours fired ("drive.rate_limited", ...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = defaultdict(int)
        self.bytes_in: dict[str, int] = defaultdict(int)
        self.bytes_out: dict[str, int] = defaultdict(int)
        self.faults: dict[str, int] = defaultdict(int)
        self.statuses: dict[str, int] = defaultdict(int)
        self.realism: dict[str, int] = defaultdict(int)

    def add(self, table: str, key: str, n: int = 1) -> None:
        with self._lock:
            getattr(self, table)[key] += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {
                name: dict(getattr(self, name))
                for name in _TABLES
            }
        out["total_bytes_in"] = sum(out["bytes_in"].values())
        out["total_bytes_out"] = sum(out["bytes_out"].values())
        return out

    def reset(self) -> None:
        with self._lock:
            for name in _TABLES:
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
        self._migrate_tokens()
        self.clock = Clock(float(self.get_meta("clock_offset_s", "0")))
        self.counters = Counters()
        # the bytes of a derived blob by name (set by the seed generator's models: emulator/generate.py)
        self.derive_blob: Callable[[str], Iterable[bytes]] | None = None

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
        self.clock.advance(seconds)
        self.set_meta("clock_offset_s", repr(self.clock.offset_s))
        return self.clock.now()

    def set_clock_scale(self, scale: float) -> None:
        """Scale emulated time (see Clock); the offset reached so far is persisted."""
        self.clock.set_scale(scale)
        self.set_meta("clock_offset_s", repr(self.clock.offset_s))

    # --- blobs -------------------------------------------------------------------------------------

    def new_blob_path(self) -> Path:
        """A fresh blob file name (not created). Blobs are immutable once their item is committed."""
        name = uuid.uuid4().hex
        sub = self.blob_dir / name[:2]
        sub.mkdir(exist_ok=True)
        return sub / name

    def blob_path(self, name: str) -> Path:
        """The blob's file. A derived blob (name starting "g", from a generated seed tree: its bytes are a
        function of the name) is written on first use by `derive_blob`, so 10^6 seeded files cost no
        file each until read."""
        path = self.blob_dir / name[:2] / name
        if name.startswith("g") and self.derive_blob is not None and not path.exists():
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_name(f"{name}.{uuid.uuid4().hex}.tmp")
            with open(tmp, "wb") as fh:
                for block in self.derive_blob(name):
                    fh.write(block)
            os.replace(tmp, path)  # atomic: a concurrent reader sees all bytes or makes its own
        return path

    def remove_blob(self, name: str | None) -> None:
        if name:
            try:
                os.unlink(self.blob_dir / name[:2] / name)
            except FileNotFoundError:
                pass

    # --- bearer tokens (shared by the Google and Microsoft identity endpoints) ----------------------

    def _migrate_tokens(self) -> None:
        with self.lock:
            cols = {r["name"] for r in self.db.execute("PRAGMA table_info(emu_tokens)")}
            if "client_id" not in cols:  # a data directory from before tokens named their OAuth client
                self.db.execute("ALTER TABLE emu_tokens ADD COLUMN client_id TEXT NOT NULL DEFAULT ''")

    def issue_token(self, audience: str, subject: str, lifetime_s: int = 3600, prefix: str = "emu",
                    client_id: str = "") -> str:
        """A new bearer token; `lifetime_s` is in emulated seconds, `client_id` the OAuth client it is for."""
        token = f"{prefix}-{secrets.token_urlsafe(24)}"
        with self.tx() as db:
            db.execute("INSERT INTO emu_tokens(token, audience, subject, expires_at, client_id) VALUES(?,?,?,?,?)",
                       (token, audience, subject, self.clock.timestamp() + lifetime_s, client_id))
        return token

    def check_token(self, token: str, audience: str) -> TokenInfo | None:
        """Subject and OAuth client of a valid, unexpired, unrevoked token for `audience`, else None."""
        rows = self.query("SELECT subject, expires_at, revoked, audience, client_id FROM emu_tokens WHERE token=?",
                          (token,))
        if not rows:
            return None
        row = rows[0]
        if row["revoked"] or row["expires_at"] < self.clock.timestamp():
            return None
        if row["audience"] not in (audience, "*"):
            return None
        return TokenInfo(str(row["subject"]), str(row["client_id"] or ""))

    def revoke_tokens(self, audience: str | None = None) -> int:
        with self.tx() as db:
            if audience is None:
                cur = db.execute("UPDATE emu_tokens SET revoked=1")
            else:
                cur = db.execute("UPDATE emu_tokens SET revoked=1 WHERE audience=?", (audience,))
            return cur.rowcount

    def close(self) -> None:
        if self.clock.scale != 1:  # keep the emulated time a scaled clock gained for the next start
            self.set_meta("clock_offset_s", repr(self.clock.offset_s))
        with self.lock:
            self.db.close()
