"""Graph upload sessions (createUploadSession + fragment PUTs), persisted so they survive a restart.

A session is a row in `graph_sessions` plus a blob file that grows by one fragment at a time. The
quickXorHash state of the bytes received so far is stored with the row (integrity.hashes.QuickXorState
is a small JSON value), so committing never re-reads the file and a restarted emulator continues the
same session. Rules (api-notes 11.2):

- fragments must arrive in order: a start before the next expected byte is 416 invalidRange/
  fragmentOverlap, after it 416 invalidRange/fragmentOutOfOrder;
- each fragment is < 60 MiB (else 413 invalidRequest/maxFragmentLengthExceeded) and, except the last,
  a multiple of 320 KiB. Real Graph accepts unaligned fragments and may fail "some large files" at
  commit; the emulator is stricter and answers 400 invalidRequest/invalidFragmentLength at once;
- the total in Content-Range is the same on every fragment and equals `fileSize` if it was declared
  (else 400 invalidRequest/fragmentLengthMismatch);
- a fragment cut short (connection dropped) is discarded whole: the session stays at its last
  fragment boundary (real Graph may keep part of it; clients re-base on `nextExpectedRanges` anyway);
- when the last byte arrives the file is committed under the session's conflict behaviour; a name
  conflict with `fail` is 409 nameAlreadyExists and the session stays until it expires;
- with `deferCommit` the last fragment answers 202 with no ranges left, and `commit` (POST to the
  uploadUrl with an empty body, Business only) creates the file; before all bytes arrived it is 400
  invalidRequest/uploadSessionIncomplete;
- sessions expire 24 hours after their last fragment (emulator clock); unknown or expired: 404.
  Zero-byte files cannot be uploaded through a session (as on Business): use simple upload.

Realism (the model's `GraphRules`, off by default): a declared `fileSize` is ignored as Business ignores
it (no early quota check, no total enforced: the quota is checked at commit); the first fragment PUTs
just after creation may answer a transient 404 itemNotFound/uploadSessionNotFound.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from driveferry.emulator.graph.errors import (
    GraphError,
    InvalidRange,
    InvalidRequest,
    ItemNotFound,
    NameAlreadyExists,
)
from driveferry.emulator.graph.models import (
    CONFLICT_BEHAVIOURS,
    GraphModel,
    Item,
    check_name,
    check_path_length,
    iso,
)
from driveferry.integrity.hashes import QuickXor, QuickXorState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS graph_sessions (
    id TEXT PRIMARY KEY, parent_id TEXT NOT NULL, name TEXT NOT NULL, target_id TEXT, conflict TEXT NOT NULL,
    total INTEGER, received INTEGER NOT NULL DEFAULT 0, qx TEXT NOT NULL, blob TEXT NOT NULL,
    fs_created TEXT, fs_modified TEXT, expires REAL NOT NULL, defer INTEGER NOT NULL DEFAULT 0
);
"""

FRAGMENT_MULTIPLE = 320 * 1024
MAX_FRAGMENT = 60 * 1024 * 1024
SESSION_LIFETIME_S = 24 * 3600


@dataclass(frozen=True)
class Session:
    id: str
    parent_id: str
    name: str
    target_id: str | None
    conflict: str
    total: int | None
    received: int
    qx: str
    blob: str
    fs_created: str | None
    fs_modified: str | None
    expires: float
    defer: int = 0

    def next_expected_ranges(self) -> list[str]:
        if self.total is not None and self.received >= self.total:
            return []
        return [f"{self.received}-"]


class UploadSessions:
    """Create, feed, query and cancel upload sessions over a GraphModel."""

    def __init__(self, model: GraphModel) -> None:
        self.model = model
        self.state = model.state
        with self.state.lock:
            self.state.db.executescript(_SCHEMA)
            cols = {r["name"] for r in self.state.db.execute("PRAGMA table_info(graph_sessions)")}
            if "defer" not in cols:  # a data directory from before deferCommit was supported
                self.state.db.execute("ALTER TABLE graph_sessions ADD COLUMN defer INTEGER NOT NULL DEFAULT 0")
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._young: dict[str, tuple[float, int]] = {}  # session -> (created at, transient 404s sent)
        self.sweep()

    def sweep(self) -> int:
        """Drop expired sessions and their partial blobs (run at start-up; `get` also drops on sight)."""
        rows = self.state.query("SELECT * FROM graph_sessions WHERE expires < ?", (self.state.clock.timestamp(),))
        for r in rows:
            self._drop(Session(**dict(r)))
        return len(rows)

    def _lock(self, sid: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(sid, threading.Lock())

    def expiration(self, session: Session) -> str:
        """The session's expirationDateTime as Graph writes it."""
        return iso(datetime.fromtimestamp(session.expires, UTC))

    def create(self, parent_id: str, name: str, conflict: str = "fail", file_size: int | None = None,
               fs_created: str | None = None, fs_modified: str | None = None,
               target_id: str | None = None, defer_commit: bool = False) -> Session:
        """Open a session for a new file `name` under `parent_id`, or for replacing `target_id`.

        Name rules and (for `fail`) a present conflict are checked now as well as at commit; a declared
        `file_size` over the remaining quota is 507 quotaLimitReached and no session is created.
        """
        if conflict not in CONFLICT_BEHAVIOURS:
            raise InvalidRequest(f"Invalid conflictBehavior {conflict!r}")
        if target_id is None:
            check_name(name)
            parent = self.model.get(parent_id)
            if not parent.is_folder:
                raise InvalidRequest("The parent item is not a folder.", "invalidParent")
            check_path_length(self.model.path_of(parent), name)
            existing = self.model.child(parent.id, name)
            if existing is not None and conflict == "fail":
                raise NameAlreadyExists("The specified item name already exists.")
        else:
            target = self.model.get(target_id)
            if target.kind != "file":
                raise InvalidRequest("Only files can be updated by an upload session.")
            parent_id, name = target.parent_id or "", target.name
        if file_size is not None and self.model.rules.ignore_file_size:
            self.model.on_event("graph.file_size_ignored")
            file_size = None
        if file_size is not None:
            if file_size < 0:
                raise InvalidRequest("fileSize must not be negative.")
            self.model.check_quota(file_size)
        sid = secrets.token_urlsafe(24)
        blob = self.state.new_blob_path()
        blob.touch()
        qx = json.dumps(QuickXor().state().to_json())
        expires = self.state.clock.timestamp() + SESSION_LIFETIME_S
        with self.state.tx() as db:
            db.execute("INSERT INTO graph_sessions(id, parent_id, name, target_id, conflict, total, qx, blob,"
                       " fs_created, fs_modified, expires, defer) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                       (sid, parent_id, name, target_id, conflict, file_size, qx, blob.name, fs_created,
                        fs_modified, expires, int(defer_commit)))
        if self.model.rules.fragment_404_count > 0:
            with self._locks_guard:
                self._young[sid] = (self.state.clock.timestamp(), 0)
        return self.get(sid)

    def _transient_404(self, sid: str) -> None:
        """Raise the 404 a session can answer just after its creation (GraphRules.fragment_404_*)."""
        rules = self.model.rules
        with self._locks_guard:
            created, sent = self._young.get(sid, (0.0, rules.fragment_404_count))
            young = self.state.clock.timestamp() - created < rules.fragment_404_window_s
            if sent >= rules.fragment_404_count or not young:
                self._young.pop(sid, None)
                return
            self._young[sid] = (created, sent + 1)
        self.model.on_event("graph.fragment_404")
        raise ItemNotFound("The upload session was not found or has expired.", "uploadSessionNotFound")

    def get(self, sid: str) -> Session:
        """A live session; 404 itemNotFound/uploadSessionNotFound if unknown or expired."""
        rows = self.state.query("SELECT * FROM graph_sessions WHERE id=?", (sid,))
        if not rows or rows[0]["expires"] < self.state.clock.timestamp():
            if rows:
                self._drop(Session(**dict(rows[0])))
            raise ItemNotFound("The upload session was not found or has expired.", "uploadSessionNotFound")
        return Session(**dict(rows[0]))

    def cancel(self, sid: str) -> None:
        with self._lock(sid):
            self._drop(self.get(sid))

    def _drop(self, s: Session, keep_blob: bool = False) -> None:
        with self._locks_guard:
            self._locks.pop(s.id, None)
            self._young.pop(s.id, None)
        with self.state.tx() as db:
            db.execute("DELETE FROM graph_sessions WHERE id=?", (s.id,))
        if not keep_blob:
            self.state.remove_blob(s.blob)

    def put(self, sid: str, start: int, end: int, total: int, chunks: Iterable[bytes]) -> Session | Item:
        """Append bytes [start, end] of `total`; returns the session (more expected) or the committed item."""
        with self._lock(sid):
            s = self.get(sid)
            self._transient_404(sid)
            length = end - start + 1
            if length >= MAX_FRAGMENT:  # "less than 60 MiB" per request
                raise GraphError("The fragment exceeds the maximum length of 60 MiB.", "maxFragmentLengthExceeded",
                                 status=413, code="invalidRequest")
            if s.total is not None and total != s.total:
                raise InvalidRequest(f"The current upload session is for {s.total} total bytes, but the current"
                                     f" fragment declares a total of {total}.", "fragmentLengthMismatch")
            if end >= total:
                raise InvalidRange("The fragment ends past the declared total.", "invalidRange", status=400)
            if start < s.received or (s.total is not None and s.received >= s.total):
                raise InvalidRange("Uploaded fragment overlaps with existing data.", "fragmentOverlap")
            if start > s.received:
                raise InvalidRange("Uploaded fragment is out of order.", "fragmentOutOfOrder")
            if end + 1 < total and length % FRAGMENT_MULTIPLE:
                raise InvalidRequest("Fragments other than the last must be a multiple of 320 KiB"
                                     " (327,680 bytes).", "invalidFragmentLength")
            path = self.state.blob_path(s.blob)
            qx = QuickXor(QuickXorState.from_json(json.loads(s.qx)))
            written = 0
            with open(path, "r+b") as fh:
                fh.truncate(s.received)  # drop leftovers of a fragment cut short before a restart
                fh.seek(s.received)
                try:
                    for data in chunks:
                        written += len(data)
                        if written > length:
                            raise InvalidRequest("The body is longer than the Content-Range.")
                        fh.write(data)
                        qx.update(data)
                    if written != length:
                        raise InvalidRequest("The body length does not match the Content-Range.")
                except BaseException:
                    fh.truncate(s.received)
                    raise
            received = s.received + length
            expires = self.state.clock.timestamp() + SESSION_LIFETIME_S
            with self.state.tx() as db:
                db.execute("UPDATE graph_sessions SET received=?, total=?, qx=?, expires=? WHERE id=?",
                           (received, total, json.dumps(qx.state().to_json()), expires, s.id))
            s = self.get(sid)
            if received < total or s.defer:
                return s
            return self._commit(s)

    def commit(self, sid: str) -> Item:
        """Commit a deferCommit session whose bytes have all arrived."""
        with self._lock(sid):
            s = self.get(sid)
            if s.total is None or s.received < s.total:
                raise InvalidRequest("Not all bytes of the upload session have been received.",
                                     "uploadSessionIncomplete")
            return self._commit(s)

    def _commit(self, s: Session) -> Item:
        qx = QuickXor(QuickXorState.from_json(json.loads(s.qx)))
        item = self.model.commit_content(s.parent_id, s.name, s.conflict, s.blob, s.received, qx,
                                         s.fs_created, s.fs_modified, target_id=s.target_id)
        self._drop(s, keep_blob=True)
        return item
