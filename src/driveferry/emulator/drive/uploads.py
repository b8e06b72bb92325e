"""Resumable upload sessions (api-notes 4.3), as rules over the model; HTTP parsing stays in routes.

A session is a row in `drive_sessions` plus a blob file that grows as chunks arrive, so an emulator
restart loses nothing. The rules real clients depend on:

* a non-final chunk keeps only the largest 256 KiB multiple of the upload offset [OBS: 2,500,000 bytes
  acknowledged as bytes=0-2359295]; the reply reports what was kept;
* bytes the session already holds are skipped (an overlapping re-send is harmless);
* a chunk that starts past the persisted size is refused with 503 and Google's message;
* a chunk cut off mid-body keeps nothing of that chunk (the client asks `bytes */T` and re-sends);
* sessions expire 7 days after creation, on the emulator clock, and then answer 404.

Digests are computed while bytes stream in and kept in memory per session; after a restart the
hashlib state is gone, so completion re-reads the blob once.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from driveferry.emulator.drive.errors import DriveError, bad_request, field_not_writable, session_not_found
from driveferry.emulator.drive.hashing import ContentHasher, content_of, rehash
from driveferry.emulator.drive.models import DriveModel
from driveferry.emulator.drive.records import DriveFile, merge_properties

CHUNK_MULTIPLE = 256 * 1024
SESSION_LIFETIME_S = 7 * 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drive_sessions (
    upload_id TEXT PRIMARY KEY, owner TEXT NOT NULL, target_id TEXT, meta TEXT NOT NULL, fields TEXT,
    params TEXT NOT NULL, total INTEGER, received INTEGER NOT NULL DEFAULT 0, blob TEXT NOT NULL,
    created REAL NOT NULL, file_id TEXT
);
"""
_RANGE = re.compile(r"bytes\s+(?:(?P<star>\*)|(?P<first>\d+)-(?P<last>\d+))/(?P<total>\d+|\*)\s*\Z")


@dataclass(frozen=True)
class ContentRange:
    """A parsed `Content-Range` of a session PUT; first/last None for a status query (`bytes */T`)."""

    first: int | None
    last: int | None
    total: int | None

    @classmethod
    def parse(cls, header: str | None, length: int | None) -> ContentRange:
        """No header: the body is the whole content (how the Python client sends an empty file).

        `length` None (a chunked body, RFC 9112 section 7.1) skips the length check here: the body is
        held to the range while it streams (`exact_body`), and without a header the caller passes the
        length it read."""
        if header is None:
            return cls(0, length - 1, length) if length else cls(None, None, 0)
        m = _RANGE.match(header.strip())
        if not m:
            raise bad_request(f"Failed to parse Content-Range header: {header}", "Content-Range")
        total = None if m["total"] == "*" else int(m["total"])
        if m["star"]:
            return cls(None, None, total)
        first, last = int(m["first"]), int(m["last"])
        if last < first or (total is not None and last >= total) or \
                (length is not None and last - first + 1 != length):
            raise bad_request(f"Content-Range {header} does not match the {length}-byte body.", "Content-Range")
        return cls(first, last, total)

    @property
    def length(self) -> int:
        """The body length this range announces (0 for a status query)."""
        return 0 if self.first is None or self.last is None else self.last - self.first + 1


def exact_body(rng: ContentRange, body: Iterable[bytes]) -> Iterator[bytes]:
    """The blocks of a body of unknown length, 400 as soon as it is longer than `rng`, or at its end if
    shorter (the session keeps nothing of such a chunk: `put` stores all or nothing)."""
    seen = 0
    for data in body:
        seen += len(data)
        if seen > rng.length:
            raise bad_request(f"The {seen}+-byte body is longer than its Content-Range ({rng.length} bytes).",
                              "Content-Range")
        yield data
    if seen != rng.length:
        raise bad_request(f"The {seen}-byte body does not match its Content-Range ({rng.length} bytes).",
                          "Content-Range")


@dataclass(frozen=True)
class Session:
    upload_id: str
    owner: str
    target_id: str | None  # set for a media update (PATCH /upload/drive/v3/files/{id})
    meta: dict[str, Any]
    fields: str | None  # the initiation's `fields`: it shapes the final response [RUN]
    params: dict[str, Any]
    total: int | None
    received: int
    blob: str
    created: float
    file_id: str | None


@dataclass(frozen=True)
class PutResult:
    session: Session
    received: int
    file: DriveFile | None  # set when the upload is complete


class UploadSessions:
    """Create, feed and complete resumable sessions (thread-safe; one chunk at a time per session)."""

    def __init__(self, model: DriveModel) -> None:
        self.model = model
        self.state = model.state
        with self.state.lock:
            self.state.db.executescript(_SCHEMA)
        self._mu = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._hashers: dict[str, ContentHasher] = {}
        self.sweep()  # sessions that expired while the emulator was down

    def initiate(self, owner: str, meta: dict[str, Any], *, fields: str | None, target_id: str | None,
                 total: int | None, params: dict[str, Any]) -> Session:
        """Validate what can be checked up front (quota, parent, properties) and open a session."""
        self.model.quotas.check_upload_allowed(owner)
        all_drives = bool(params.get("all_drives"))
        if target_id is not None:
            target_id = self.model.get(target_id, all_drives=all_drives).id
            if "parents" in meta:
                raise field_not_writable("parents")
        else:
            for pid in meta.get("parents") or []:
                if isinstance(pid, str):
                    self.model.get(pid, all_drives=all_drives)
        merge_properties({}, meta.get("properties"), "properties", 0)
        merge_properties({}, meta.get("appProperties"), "appProperties", 0)
        if total is not None:
            self.model.quotas.check_storage(total)
        path = self.state.new_blob_path()
        path.touch()
        uid = secrets.token_urlsafe(36)
        with self.state.tx() as db:
            db.execute("INSERT INTO drive_sessions(upload_id, owner, target_id, meta, fields, params, total, blob, "
                       "created) VALUES(?,?,?,?,?,?,?,?,?)",
                       (uid, owner, target_id, json.dumps(meta), fields, json.dumps(params), total, path.name,
                        self.state.clock.timestamp()))
        self._hashers[uid] = ContentHasher()
        return self.load(uid)

    def load(self, upload_id: str) -> Session:
        """The session, or 404 if unknown or expired (an expired one is deleted with its bytes)."""
        rows = self.state.query("SELECT * FROM drive_sessions WHERE upload_id=?", (upload_id,))
        if not rows:
            raise session_not_found()
        r = rows[0]
        s = Session(r["upload_id"], r["owner"], r["target_id"], json.loads(r["meta"]), r["fields"],
                    json.loads(r["params"]), r["total"], r["received"], r["blob"], r["created"], r["file_id"])
        if self.state.clock.timestamp() - s.created > SESSION_LIFETIME_S:
            self.discard(s)
            raise session_not_found()
        return s

    def discard(self, s: Session) -> None:
        with self.state.tx() as db:
            db.execute("DELETE FROM drive_sessions WHERE upload_id=?", (s.upload_id,))
        if s.file_id is None:
            self.state.remove_blob(s.blob)
        self._hashers.pop(s.upload_id, None)
        with self._mu:
            self._locks.pop(s.upload_id, None)

    def cancel(self, upload_id: str) -> None:
        """Discard an unfinished session (404 if unknown; a finished one stays, its file is untouched)."""
        with self._lock_for(upload_id):
            s = self.load(upload_id)
            if s.file_id is None:
                self.discard(s)

    def _lock_for(self, upload_id: str) -> threading.Lock:
        with self._mu:
            return self._locks.setdefault(upload_id, threading.Lock())

    def put(self, upload_id: str, rng: ContentRange, body: Iterator[bytes]) -> PutResult:
        """Apply one PUT to the session: store new bytes, and complete the file on the last byte."""
        with self._lock_for(upload_id):
            s = self.load(upload_id)
            if s.file_id is not None:  # already complete: a status query or a late re-send
                return PutResult(s, s.received, self.model.get(s.file_id))
            if s.total is not None and rng.total is not None and rng.total != s.total:
                raise bad_request(f"The upload's total size {rng.total} differs from the {s.total} bytes "
                                  "declared before.", "Content-Range")
            total = rng.total if rng.total is not None else s.total
            if rng.first is None or rng.last is None:  # status query
                if total is not None and s.received == total:
                    return self._complete(s, total)
                return PutResult(s, s.received, None)
            if rng.first > s.received:
                raise DriveError(503, "backendError",
                                 f"Invalid request.  According to the Content-Range header, the upload offset "
                                 f"is {rng.first} byte(s), which exceeds already uploaded size of "
                                 f"{s.received} byte(s).")
            final = total is not None and rng.last + 1 == total
            end = rng.last + 1 if final else max(s.received, (rng.last + 1) // CHUNK_MULTIPLE * CHUNK_MULTIPLE)
            # no cap check here: an upload in progress completes even past the daily cap ("Uploads that
            # are in progress will complete", Google admin help 172541); only new sessions are refused
            written = self._store(s, body, skip=s.received - rng.first, keep=end - s.received)
            received = s.received + written
            if written:
                with self.state.tx() as db:
                    db.execute("UPDATE drive_sessions SET received=?, total=COALESCE(total, ?) WHERE upload_id=?",
                               (received, total, upload_id))
                self.model.quotas.record_upload(s.owner, written)
            s = self.load(upload_id)
            if final:
                return self._complete(s, received)
            return PutResult(s, received, None)

    def _store(self, s: Session, body: Iterator[bytes], skip: int, keep: int) -> int:
        """Append the body's bytes [skip, skip+keep) to the blob; all or nothing if the body is cut."""
        path = self.state.blob_path(s.blob)
        hasher = self._hashers.get(s.upload_id)
        if hasher is not None and hasher.length != s.received:
            hasher = None  # out of step (a crash between write and commit): re-hash at completion
        before = hasher.copy() if hasher is not None else None
        written = 0
        try:
            with open(path, "r+b") as fh:
                fh.seek(s.received)
                fh.truncate()  # drop bytes of a chunk cut off before an earlier crash
                for data in body:
                    if skip >= len(data):
                        skip -= len(data)
                        continue
                    if skip:
                        data, skip = data[skip:], 0
                    part = data[:keep - written] if written + len(data) > keep else data
                    if part:
                        fh.write(part)
                        if hasher is not None:
                            hasher.update(part)
                        written += len(part)
        except BaseException:
            with open(path, "r+b") as fh:
                fh.truncate(s.received)
            if before is not None:
                self._hashers[s.upload_id] = before
            raise
        if hasher is not None:
            self._hashers[s.upload_id] = hasher
        else:
            self._hashers.pop(s.upload_id, None)
        return written

    def _complete(self, s: Session, received: int) -> PutResult:
        path = self.state.blob_path(s.blob)
        hasher = self._hashers.get(s.upload_id)
        if hasher is None or hasher.length != received:
            hasher = rehash(path)
        content = content_of(path, hasher)
        all_drives = bool(s.params.get("all_drives"))
        try:
            if s.target_id is not None:
                f = self.model.update(s.target_id, s.meta, add_parents=s.params.get("add_parents", ""),
                                      remove_parents=s.params.get("remove_parents", ""), content=content,
                                      all_drives=all_drives)
            else:
                if s.total is None:
                    self.model.quotas.check_storage(received)
                f = self.model.insert(s.meta, content, s.owner, all_drives=all_drives)
        except DriveError:
            # The file can't be created (e.g. its parent vanished): the session is dead, like on Drive.
            self.discard(s)
            raise
        with self.state.tx() as db:
            db.execute("UPDATE drive_sessions SET file_id=?, received=? WHERE upload_id=?",
                       (f.id, received, s.upload_id))
        self._hashers.pop(s.upload_id, None)
        return PutResult(self.load(s.upload_id), received, f)

    def sweep(self) -> int:
        """Delete expired sessions and their partial bytes; returns how many went."""
        cutoff = self.state.clock.timestamp() - SESSION_LIFETIME_S
        rows = self.state.query("SELECT upload_id FROM drive_sessions WHERE created<?", (cutoff,))
        n = 0
        for r in rows:
            try:
                self.load(r["upload_id"])
            except DriveError:
                n += 1
        return n

