"""Drive revisions of blob files: each content upload is a new head revision; older ones may be purged.

What Drive serves (developers.google.com/drive/api/reference/rest/v3/revisions, guides/manage-revisions):

    GET    /drive/v3/files/{fileId}/revisions                 revisions.list (pageSize up to 1000)
    GET    /drive/v3/files/{fileId}/revisions/{revisionId}    revisions.get; with alt=media the bytes
    PATCH  /drive/v3/files/{fileId}/revisions/{revisionId}    revisions.update (keepForever, published...)
    DELETE /drive/v3/files/{fileId}/revisions/{revisionId}    revisions.delete

Rules kept here, from the manage-revisions guide:
- every files.create or files.update that carries content makes a new head revision; the head is the
  file's current content and is never purged;
- without `fields`, revisions.list answers only id, mimeType, kind and modifiedTime of each revision
  (md5Checksum, size, keepForever and originalFilename must be asked for);
- "Up to 200 revisions can be set to Keep Forever"; any other revision but the head is purgeable:
  "typically preserved for 30 days, but can be purged earlier if a file has 100 revisions that aren't
  designated as Keep Forever and a new revision is uploaded". The emulator purges on that rule, by its
  own clock (30 days after a revision stopped being the head), when revisions are listed or added;
- revisions take no supportsAllDrives parameter: a shared drive's file is reached by its id.
Emulator choices [UNC]: revision ids are opaque tokens; a folder or a Google-native file answers 403
revisionsNotSupported; a 201st keepForever is 400 badRequest; the last revision cannot be deleted
(403 cannotDeleteLastRevision) and deleting the head makes the previous revision the file's content.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from driveferry.emulator.drive.errors import DriveError
from driveferry.emulator.drive.records import DriveFile, rfc3339
from driveferry.emulator.state import State

KEEP_FOREVER_LIMIT = 200  # revisions of one file that may be kept forever
PURGE_COUNT = 100  # purgeable revisions a file keeps when a new one arrives
PURGE_AFTER = timedelta(days=30)  # how long a purgeable revision is typically kept

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drive_revisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, file_id TEXT NOT NULL, rev_id TEXT UNIQUE NOT NULL,
    blob TEXT, size INTEGER NOT NULL, md5 TEXT, sha1 TEXT, sha256 TEXT, mime TEXT, name TEXT NOT NULL,
    modified TEXT NOT NULL, keep_forever INTEGER NOT NULL DEFAULT 0, superseded_at REAL
);
CREATE INDEX IF NOT EXISTS drive_revisions_file ON drive_revisions(file_id, seq);
"""


@dataclass(frozen=True)
class Revision:
    """One stored revision; `superseded_at` is the emulator time it stopped being the head (None: head)."""

    seq: int
    file_id: str
    rev_id: str
    blob: str | None
    size: int
    md5: str | None
    sha1: str | None
    sha256: str | None
    mime: str | None
    name: str
    modified: str
    keep_forever: bool
    superseded_at: float | None

    def resource(self) -> dict[str, Any]:
        """The full Revision resource (the routes cut it to the requested fields)."""
        out: dict[str, Any] = {"kind": "drive#revision", "id": self.rev_id, "mimeType": self.mime or "",
                               "modifiedTime": self.modified, "keepForever": self.keep_forever,
                               "published": False, "originalFilename": self.name, "size": str(self.size),
                               "lastModifyingUser": {"kind": "drive#user", "me": True}}
        if self.md5:
            out["md5Checksum"] = self.md5
        return out


def _row(r: sqlite3.Row) -> Revision:
    return Revision(int(r["seq"]), str(r["file_id"]), str(r["rev_id"]), r["blob"], int(r["size"]), r["md5"],
                    r["sha1"], r["sha256"], r["mime"], str(r["name"]), str(r["modified"]), bool(r["keep_forever"]),
                    r["superseded_at"])


def _has_revisions(f: DriveFile) -> bool:
    return not f.is_folder and not f.is_native and f.blob is not None


class RevisionStore:
    """The revisions of blob files, in the shared database (`drive_revisions`). Thread-safe.

    The head revision shares the file's blob; older revisions own theirs."""

    def __init__(self, state: State) -> None:
        self.state = state
        with state.lock:
            state.db.executescript(_SCHEMA)

    def _rows(self, file_id: str) -> list[Revision]:
        return [_row(r) for r in self.state.query("SELECT * FROM drive_revisions WHERE file_id=? ORDER BY seq",
                                                  (file_id,))]

    def ensure_head(self, f: DriveFile) -> None:
        """A revision row for the file's current content, if it has none (seeded in bulk, or stored before
        revisions were kept)."""
        if _has_revisions(f) and not self.state.query("SELECT 1 FROM drive_revisions WHERE file_id=? LIMIT 1",
                                                      (f.id,)):
            self.record(f)

    def record(self, f: DriveFile) -> None:
        """The file's content (just created or replaced) as its new head revision; the purge rules run."""
        if not _has_revisions(f):
            return
        now = self.state.clock.timestamp()
        with self.state.tx() as db:
            db.execute("UPDATE drive_revisions SET superseded_at=? WHERE file_id=? AND superseded_at IS NULL",
                       (now, f.id))
            db.execute("INSERT INTO drive_revisions(file_id, rev_id, blob, size, md5, sha1, sha256, mime, name,"
                       " modified, superseded_at) VALUES(?,?,?,?,?,?,?,?,?,?,NULL)",
                       (f.id, "0B" + secrets.token_urlsafe(24), f.blob, f.size or 0, f.md5, f.sha1, f.sha256,
                        f.mime_type, f.name, rfc3339(self.state.clock.now())))
        self.purge(f.id, uploaded=True)

    def purge(self, file_id: str, uploaded: bool = False) -> None:
        """Drop purgeable revisions (not the head, not keepForever) older than PURGE_AFTER, and, when a
        revision was just `uploaded`, the oldest beyond PURGE_COUNT."""
        rows = [r for r in self._rows(file_id) if r.superseded_at is not None and not r.keep_forever]
        cutoff = self.state.clock.timestamp() - PURGE_AFTER.total_seconds()
        doomed = [r for r in rows if r.superseded_at is not None and r.superseded_at < cutoff]
        rest = [r for r in rows if r not in doomed]
        if uploaded and len(rest) > PURGE_COUNT:
            doomed += rest[:len(rest) - PURGE_COUNT]
        self._forget(doomed)

    def _forget(self, doomed: list[Revision]) -> None:
        if not doomed:
            return
        with self.state.tx() as db:
            db.executemany("DELETE FROM drive_revisions WHERE seq=?", [(r.seq,) for r in doomed])
        for r in doomed:
            self.state.remove_blob(r.blob)

    def of(self, f: DriveFile) -> list[Revision]:
        """The file's revisions, oldest first (the head last), after purging."""
        self._check(f)
        self.ensure_head(f)
        self.purge(f.id)
        return self._rows(f.id)

    def get(self, f: DriveFile, rev_id: str) -> Revision:
        """One revision; 404 notFound when the file has no such revision."""
        found = next((r for r in self.of(f) if r.rev_id == rev_id or (rev_id == "head" and r.superseded_at
                                                                          is None)), None)
        if found is None:
            raise DriveError(404, "notFound", f"Revision not found: {rev_id}.", location="revisionId")
        return found

    def update(self, f: DriveFile, rev_id: str, patch: dict[str, Any]) -> Revision:
        """revisions.update: keepForever (at most KEEP_FOREVER_LIMIT per file); other keys are ignored."""
        rev = self.get(f, rev_id)
        if "keepForever" in patch:
            keep = bool(patch["keepForever"])
            kept = sum(1 for r in self._rows(f.id) if r.keep_forever and r.seq != rev.seq)
            if keep and kept >= KEEP_FOREVER_LIMIT:
                raise DriveError(400, "badRequest", f"At most {KEEP_FOREVER_LIMIT} revisions of a file can be"
                                 " kept forever.", location="keepForever")
            with self.state.tx() as db:
                db.execute("UPDATE drive_revisions SET keep_forever=? WHERE seq=?", (int(keep), rev.seq))
        return self.get(f, rev.rev_id)

    def delete(self, f: DriveFile, rev_id: str) -> Revision | None:
        """revisions.delete. Returns the new head when the head was deleted (the caller makes it the file's
        content), else None."""
        rev = self.get(f, rev_id)
        rows = self._rows(f.id)
        if len(rows) == 1:
            raise DriveError(403, "cannotDeleteLastRevision", "The last revision of a file cannot be deleted.",
                             location="revisionId")
        with self.state.tx() as db:
            db.execute("DELETE FROM drive_revisions WHERE seq=?", (rev.seq,))
            if rev.superseded_at is not None:
                self.state.remove_blob(rev.blob)
                return None
            head = [r for r in rows if r.seq != rev.seq][-1]
            db.execute("UPDATE drive_revisions SET superseded_at=NULL WHERE seq=?", (head.seq,))
        self.state.remove_blob(rev.blob)
        return self.get(f, head.rev_id)

    def holds(self, blob: str | None) -> bool:
        """Whether a revision still owns `blob` (so replacing the file's content must not delete it)."""
        return bool(blob) and bool(self.state.query("SELECT 1 FROM drive_revisions WHERE blob=? LIMIT 1", (blob,)))

    def drop(self, files: list[DriveFile]) -> None:
        """Forget the revisions of deleted files; free the blobs other than the files' own."""
        own = {f.blob for f in files}
        ids = [f.id for f in files]
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        rows = self.state.query(f"SELECT blob FROM drive_revisions WHERE file_id IN ({marks})", ids)
        with self.state.tx() as db:
            db.execute(f"DELETE FROM drive_revisions WHERE file_id IN ({marks})", ids)
        for r in rows:
            if r["blob"] not in own:
                self.state.remove_blob(r["blob"])

    @staticmethod
    def _check(f: DriveFile) -> None:
        if not _has_revisions(f):
            raise DriveError(403, "revisionsNotSupported", "The file does not support revisions.",
                             location="fileId")


# --- HTTP ------------------------------------------------------------------------------------------------

_DEFAULT_LIST = "kind,nextPageToken,revisions(id,mimeType,kind,modifiedTime)"  # the guide's default set
_DEFAULT_ONE = "id,mimeType,kind,modifiedTime"
MAX_PAGE_SIZE = 1000


class RevisionRoutes:
    """revisions.list/get/update/delete over a DriveModel (whose `revisions` is a RevisionStore)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def _file(self, req: Any) -> DriveFile:
        return self.model.get(req.params["id"])  # type: ignore[no-any-return]

    def list(self, req: Any) -> Any:
        from driveferry.emulator.drive import fields
        from driveferry.emulator.http import Response
        revs = self.model.revisions.of(self._file(req))
        try:
            size = min(MAX_PAGE_SIZE, max(1, int(req.arg("pageSize") or 200)))
            start = int(req.arg("pageToken") or 0)
        except ValueError:
            raise DriveError(400, "invalid", "Invalid value for pageSize or pageToken.", location="pageToken") from None
        body: dict[str, Any] = {"kind": "drive#revisionList",
                                "revisions": [r.resource() for r in revs[start:start + size]]}
        if start + size < len(revs):
            body["nextPageToken"] = str(start + size)
        return Response.json(fields.apply(body, fields.parse(req.arg("fields") or _DEFAULT_LIST)))

    def get(self, req: Any) -> Any:
        from driveferry.emulator.drive import fields
        from driveferry.emulator.http import Response
        rev = self.model.revisions.get(self._file(req), req.params["rev"])
        if req.arg("alt") == "media":
            return self._media(req, rev)
        return Response.json(fields.apply(rev.resource(), fields.parse(req.arg("fields") or _DEFAULT_ONE)))

    def _media(self, req: Any, rev: Revision) -> Any:
        from driveferry.emulator.drive.media import open_range, parse_range
        from driveferry.emulator.http import Response
        headers = [("Content-Type", rev.mime or "application/octet-stream"), ("Accept-Ranges", "bytes")]
        if not rev.size or not rev.blob:
            return Response(200, headers, b"", length=0, download=True)
        path = self.model.state.blob_path(rev.blob)
        rng = parse_range(req.headers.get("range"), rev.size)
        if rng is None:
            return Response(200, headers, open_range(path, 0, rev.size), length=rev.size, download=True)
        start, end = rng
        headers.append(("Content-Range", f"bytes {start}-{end - 1}/{rev.size}"))
        return Response(206, headers, open_range(path, start, end), length=end - start, download=True)

    def update(self, req: Any) -> Any:
        from driveferry.emulator.drive import fields
        from driveferry.emulator.drive.media import json_body
        from driveferry.emulator.http import Response
        rev = self.model.revisions.update(self._file(req), req.params["rev"], json_body(req))
        return Response.json(fields.apply(rev.resource(), fields.parse(req.arg("fields") or _DEFAULT_ONE)))

    def delete(self, req: Any) -> Any:
        from driveferry.emulator.http import Response
        f = self._file(req)
        head = self.model.revisions.delete(f, req.params["rev"])
        if head is not None:  # the previous revision is the file's content again
            f.blob, f.size, f.md5, f.sha1, f.sha256 = head.blob, head.size, head.md5, head.sha1, head.sha256
            self.model._save(f)
        return Response.empty(204)


def register_revisions(add: Any, v3: str, model: Any) -> RevisionRoutes:
    """Add the revisions routes through the Drive module's `add(name, method, pattern, fn)`."""
    routes = RevisionRoutes(model)
    base = v3 + r"/files/(?P<id>[^/]+)/revisions"
    add("drive.revisions.list", "GET", base, routes.list)
    add("drive.revisions.get", "GET", base + r"/(?P<rev>[^/]+)", routes.get)
    add("drive.revisions.update", "PATCH", base + r"/(?P<rev>[^/]+)", routes.update)
    add("drive.revisions.delete", "DELETE", base + r"/(?P<rev>[^/]+)", routes.delete)
    return routes
