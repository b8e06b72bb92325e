"""The Drive model: files, folders and limits, with Drive's rules, and no HTTP.

State lives in the emulator's shared SQLite database (tables `drive_*`) and blob files, so it survives
a restart. Seeding, tests and the lazy-sync simulator use this API directly:

    model = drive_model(emulator)                  # routes.drive_model; or DriveModel(emulator.state)
    folder = model.create_folder("a")              # under My Drive ("root")
    f = model.create_file("x.bin", [b"data"], parent=folder.id, app_properties={"k": "v"})
    model.get(f.id); model.children(folder.id); model.find_by_path("a/x.bin")  # -> [DriveFile]
    model.corrupt(f.id, offset=0)                  # stored bytes change, md5/sha keep the old values
    model.set_limits(daily_upload_bytes=10**9, storage_limit_bytes=None)

Errors are `DriveError`s carrying the wire status and reason (404 notFound, 400 badRequest, 403 quota).

Realism (`model.rules`, a `DriveRules`, set by the realism profile; off by default): search lag for new
and renamed items, and appProperties private to the OAuth client of the request being served
(`state.CALLER`; the model API outside a request acts as the emulator's own client).
`model.on_event(name)` is called for each behaviour that fires ("drive.lag_hidden", ...).
"""

from __future__ import annotations

import itertools
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import fields as dc_fields
from datetime import datetime
from pathlib import Path
from typing import Any

from driveferry.emulator.drive import convert, shareddrives
from driveferry.emulator.drive.changes import SCHEMA as CHANGES_SCHEMA
from driveferry.emulator.drive.changes import log_change
from driveferry.emulator.drive.errors import DriveError, bad_request, field_not_writable, not_found
from driveferry.emulator.drive.hashing import write_blob
from driveferry.emulator.drive.quotas import Quotas
from driveferry.emulator.drive.records import (
    EXPORT_LIMIT_BYTES,
    EXPORTS,
    FOLDER_MIME,
    OCTET_STREAM,
    SHORTCUT_MIME,
    DriveFile,
    DriveRules,
    FileResource,
    StoredContent,
    is_valid_id,
    merge_properties,
    new_drive_id,
    new_file_id,
    parse_time,
    rfc3339,
)
from driveferry.emulator.drive.revisions import RevisionStore
from driveferry.emulator.generate import install_derived
from driveferry.emulator.state import CALLER, State

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drive_files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, name TEXT NOT NULL,
    mime_type TEXT NOT NULL, parent TEXT, owner TEXT NOT NULL, created TEXT NOT NULL, modified TEXT NOT NULL,
    drive_id TEXT, size INTEGER, md5 TEXT, sha1 TEXT, sha256 TEXT, blob TEXT, trashed INTEGER NOT NULL DEFAULT 0,
    starred INTEGER NOT NULL DEFAULT 0, description TEXT, version INTEGER NOT NULL DEFAULT 1,
    properties TEXT NOT NULL DEFAULT '{}', app_properties TEXT NOT NULL DEFAULT '{}',
    shortcut_target TEXT, shortcut_target_mime TEXT, client_app_properties TEXT NOT NULL DEFAULT '{}',
    search_visible_at REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS drive_files_parent ON drive_files(parent);
"""
# Columns added after the first release: (name, declaration) for ALTER TABLE on older data directories.
_ADDED_COLUMNS = (("client_app_properties", "TEXT NOT NULL DEFAULT '{}'"),
                  ("search_visible_at", "REAL NOT NULL DEFAULT 0"))
_JSON_COLUMNS = ("properties", "app_properties", "client_app_properties")

SEED_OWNER = "user@example.com"
_COLUMNS = [f.name for f in dc_fields(DriveFile)]


def _row_to_file(row: sqlite3.Row) -> DriveFile:
    d = {k: row[k] for k in _COLUMNS}
    d["trashed"], d["starred"] = bool(d["trashed"]), bool(d["starred"])
    for k in _JSON_COLUMNS:
        d[k] = json.loads(d[k])
    return DriveFile(**d)


def _no_event(name: str) -> None:
    return None


class DriveModel:
    """Files and folders of one emulated Drive (all users share it; quotas are per user)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.rules = DriveRules()
        self.on_event: Callable[[str], None] = _no_event
        with state.lock:
            state.db.executescript(_SCHEMA + CHANGES_SCHEMA)
            have = {r["name"] for r in state.db.execute("PRAGMA table_info(drive_files)")}
            for name, decl in _ADDED_COLUMNS:
                if name not in have:
                    state.db.execute(f"ALTER TABLE drive_files ADD COLUMN {name} {decl}")
        self.quotas = Quotas(state)  # after drive_files exists: its usage totals are triggers on it
        self.revisions = RevisionStore(state)  # each content upload is a head revision (revisions.py)
        install_derived(state)  # generated seed files' blobs are written on first read
        root = state.get_meta("drive.root_id", "")
        if not root:
            root = new_file_id()
            now = rfc3339(state.clock.now())
            self._insert(DriveFile(id=root, name="My Drive", mime_type=FOLDER_MIME, parent=None,
                                   owner=SEED_OWNER, created=now, modified=now))
            state.set_meta("drive.root_id", root)
        self.root_id = root

    # --- settings ----------------------------------------------------------------------------------------

    def set_limits(self, daily_upload_bytes: int | None = None, storage_limit_bytes: int | None = None,
                   *, clear_storage_limit: bool = False) -> dict[str, int | None]:
        """Set the per-user rolling-24-h upload cap and/or the storage limit (persisted); returns both."""
        return self.quotas.set_limits(daily_upload_bytes, storage_limit_bytes,
                                      clear_storage_limit=clear_storage_limit)

    def limits(self) -> dict[str, int | None]:
        return self.quotas.limits()

    @property
    def native_size(self) -> bool:
        """Whether native Docs report a `size` (current Drive does; older clients assume not)."""
        return self.state.get_meta("drive.native_size", "1") == "1"

    def set_native_size(self, present: bool) -> None:
        self.state.set_meta("drive.native_size", "1" if present else "0")

    # --- reading -----------------------------------------------------------------------------------------

    def resolve(self, file_id: str) -> str:
        return self.root_id if file_id == "root" else file_id

    def find(self, file_id: str) -> DriveFile | None:
        rows = self.state.query("SELECT * FROM drive_files WHERE id=?", (self.resolve(file_id),))
        return _row_to_file(rows[0]) if rows else None

    def get(self, file_id: str, *, all_drives: bool = True) -> DriveFile:
        """The file, or 404 notFound. Shared-drive items are hidden unless `all_drives` (supportsAllDrives)."""
        f = self.find(file_id)
        if f is None or (f.drive_id is not None and not all_drives):
            raise not_found(file_id)
        return f

    def children(self, folder_id: str) -> list[DriveFile]:
        rows = self.state.query("SELECT * FROM drive_files WHERE parent=? ORDER BY seq",
                                (self.resolve(folder_id),))
        return [_row_to_file(r) for r in rows]

    def all_files(self) -> list[DriveFile]:
        return [_row_to_file(r) for r in self.state.query("SELECT * FROM drive_files ORDER BY seq")]

    def find_by_path(self, path: str, root: str = "root") -> list[DriveFile]:
        """Every item at `path` ("a/b/c") under `root`; a list, since Drive allows duplicate names."""
        level = [self.get(root)]
        for part in [p for p in path.split("/") if p]:
            level = [c for f in level if f.is_folder for c in self.children(f.id) if c.name == part]
        return level

    def is_trashed(self, f: DriveFile, memo: dict[str, bool] | None = None) -> bool:
        """Trashed explicitly or through any ancestor (the `trashed` field clients see)."""
        memo = {} if memo is None else memo
        chain: list[str] = []
        cur: DriveFile | None = f
        result = False
        while cur is not None:
            if cur.id in memo:
                result = memo[cur.id]
                break
            chain.append(cur.id)
            if cur.trashed:
                result = True
                break
            cur = self.find(cur.parent) if cur.parent else None
        for fid in chain:
            memo[fid] = result
        return result

    def client(self) -> str | None:
        """Whose appProperties a read or write uses: the calling OAuth client when they are private,
        None (the emulator's own client, the only map) otherwise or outside a request."""
        caller = CALLER.get()
        if not self.rules.private_app_properties or caller is None:
            return None
        return caller.client_id or None

    def resource(self, f: DriveFile, memo: dict[str, bool] | None = None) -> dict[str, Any]:
        """The File resource as the current caller sees it (its own appProperties; a `search_hidden`
        mark while the item is within its search lag)."""
        client = self.client()
        r = FileResource(f.resource(trashed=self.is_trashed(f, memo), native_size=self.native_size,
                                    client=client))
        if self.rules.private_app_properties and f.others_have_app_props(client):
            self.on_event("drive.app_properties_hidden")
        if self.rules.omit_sha256:
            r.pop("sha1Checksum", None)
            r.pop("sha256Checksum", None)
        if f.search_visible_at and f.search_visible_at > self.state.clock.timestamp():
            r.search_hidden = lambda: self.on_event("drive.lag_hidden")
        return r

    def blob_path(self, f: DriveFile) -> Path | None:
        return self.state.blob_path(f.blob) if f.blob else None

    def export_text(self, f: DriveFile, mime: str) -> bytes:
        """A native document's export (its stored text); 400 if the conversion isn't offered."""
        if mime not in EXPORTS.get(f.mime_type, ()):
            raise bad_request("The requested conversion is not supported.", "mimeType")
        path = self.blob_path(f)
        data = convert.convert(path.read_bytes() if path else b"", mime)
        if len(data) > EXPORT_LIMIT_BYTES:  # the cap is on the exported content (convert.py)
            raise DriveError(403, "exportSizeLimitExceeded", "This file is too large to be exported.")
        return data

    # --- writing (model API) -----------------------------------------------------------------------------

    def create_folder(self, name: str, parent: str = "root", *, modified: datetime | None = None,
                      app_properties: dict[str, str] | None = None, owner: str = SEED_OWNER) -> DriveFile:
        meta: dict[str, Any] = {"name": name, "mimeType": FOLDER_MIME, "parents": [parent]}
        if modified:
            meta["modifiedTime"] = rfc3339(modified)
        if app_properties:
            meta["appProperties"] = app_properties
        return self.insert(meta, None, owner)

    def create_file(self, name: str, chunks: Iterable[bytes], parent: str = "root", *, mime: str = OCTET_STREAM,
                    modified: datetime | None = None, app_properties: dict[str, str] | None = None,
                    properties: dict[str, str] | None = None, owner: str = SEED_OWNER) -> DriveFile:
        """A binary file from an iterator of bytes (streamed to a blob and hashed once; no quotas apply)."""
        meta: dict[str, Any] = {"name": name, "mimeType": mime, "parents": [parent]}
        if modified:
            meta["modifiedTime"] = rfc3339(modified)
        if app_properties:
            meta["appProperties"] = app_properties
        if properties:
            meta["properties"] = properties
        content = write_blob(self.state.new_blob_path(), chunks)
        return self.insert(meta, content, owner)

    def create_native(self, name: str, parent: str = "root", *, kind: str = "document", text: str = "",
                      owner: str = SEED_OWNER) -> DriveFile:
        """A Google-native document (no md5/sha, not downloadable) whose export is `text`."""
        content = write_blob(self.state.new_blob_path(), [text.encode()])
        return self.insert({"name": name, "mimeType": f"application/vnd.google-apps.{kind}",
                            "parents": [parent]}, content, owner)

    def create_shortcut(self, name: str, target_id: str, parent: str = "root") -> DriveFile:
        return self.insert({"name": name, "mimeType": SHORTCUT_MIME, "parents": [parent],
                            "shortcutDetails": {"targetId": target_id}}, None, SEED_OWNER)

    def create_shared_drive(self, name: str) -> DriveFile:
        """A shared drive's root folder; items below it carry `driveId`."""
        did = new_drive_id()
        now = rfc3339(self.state.clock.now())
        f = DriveFile(id=did, name=name, mime_type=FOLDER_MIME, parent=None, owner=SEED_OWNER, created=now,
                      modified=now, drive_id=did)
        self._insert(f)
        return self.get(did)

    def corrupt(self, file_id: str, offset: int = 0) -> None:
        """Flip one stored byte; metadata keeps the old hashes (silent corruption for verify tests)."""
        f = self.get(file_id)
        path = self.blob_path(f)
        if path is None or not f.size:
            raise bad_request("The file has no binary content to corrupt.", "file_id")
        if not 0 <= offset < f.size:
            raise bad_request(f"offset must be within 0..{f.size - 1}", "offset")
        with open(path, "r+b") as fh:
            fh.seek(offset)
            b = fh.read(1)
            fh.seek(offset)
            fh.write(bytes([b[0] ^ 0xFF]))

    def generate_ids(self, count: int) -> list[str]:
        return [new_file_id() for _ in range(count)]

    # --- writing (rules shared with the HTTP routes) -----------------------------------------------------

    def insert(self, meta: dict[str, Any], content: StoredContent | None, owner: str,
               *, all_drives: bool = True) -> DriveFile:
        """Create a file from a files.create metadata body (already parsed JSON) and optional content."""
        name = meta.get("name", "Untitled")
        if not isinstance(name, str):
            raise bad_request("Invalid value for name.", "name")
        mime = meta.get("mimeType") or OCTET_STREAM
        if not isinstance(mime, str):
            raise bad_request("Invalid value for mimeType.", "mimeType")
        parents = meta.get("parents") or ["root"]
        if not isinstance(parents, list) or len(parents) != 1 or not isinstance(parents[0], str):
            raise bad_request("A file must have exactly one parent.", "parents")
        parent = self.get(parents[0], all_drives=all_drives)
        if not parent.is_folder:
            raise bad_request("The parent is not a folder.", "parents")
        shareddrives.check_room(self.state, parent.drive_id)  # 400,000 items a shared drive (shareddrives.py)
        now = rfc3339(self.state.clock.now())
        fid = meta.get("id") or new_file_id()
        if not isinstance(fid, str) or not is_valid_id(fid):
            raise bad_request("The provided file ID is not usable.", "id")
        if self.find(fid) is not None:
            raise DriveError(409, "duplicate", "A file already exists with the provided ID.", location="id")
        f = DriveFile(id=fid, name=name, mime_type=mime, parent=parent.id, owner=owner, created=now, modified=now,
                      drive_id=parent.drive_id, search_visible_at=self._search_lag(self.rules.search_lag_new_s))
        if "createdTime" in meta:
            f.created = parse_time(meta["createdTime"], "createdTime")
        if "modifiedTime" in meta:
            f.modified = parse_time(meta["modifiedTime"], "modifiedTime")
        self._apply_simple(f, meta)
        if mime == SHORTCUT_MIME:
            details = meta.get("shortcutDetails")
            target = details.get("targetId") if isinstance(details, dict) else None
            if not isinstance(target, str):
                raise bad_request("A shortcut needs shortcutDetails.targetId.", "shortcutDetails.targetId")
            f.shortcut_target, f.shortcut_target_mime = target, self.get(target).mime_type
        if content is not None:
            f.blob, f.size = content.blob, content.size
            if not f.is_native:
                f.md5, f.sha1, f.sha256 = content.md5, content.sha1, content.sha256
        self._insert(f)
        if content is not None:
            self.revisions.record(f)
        return self.get(f.id)

    def copy(self, file_id: str, meta: dict[str, Any], owner: str, *, all_drives: bool = True) -> DriveFile:
        """files.copy: a new file with the source's bytes and stored hashes; `meta` overrides name, parents,
        properties. Copies count toward the daily upload cap [OBS: the cap covers uploads and copies]."""
        src = self.get(file_id, all_drives=all_drives)
        if src.is_folder:
            raise DriveError(403, "cannotCopyFile", "This file cannot be copied by the user.", location="fileId")
        self.quotas.check_upload_allowed(owner)
        if not src.is_native:
            self.quotas.check_storage(src.size or 0)
        new_meta: dict[str, Any] = {"name": src.name, "mimeType": src.mime_type, "parents": [src.parent or "root"],
                                    "properties": src.properties, "appProperties": src.app_props(self.client()),
                                    "description": src.description}
        for key, value in meta.items():
            if key in ("properties", "appProperties") and isinstance(value, dict):
                new_meta[key] = {**new_meta[key], **value}
            else:
                new_meta[key] = value
        content = None
        if src.blob:
            dest = self.state.new_blob_path()
            shutil.copyfile(self.state.blob_path(src.blob), dest)
            content = StoredContent(dest.name, src.size or 0, src.md5 or "", src.sha1 or "", src.sha256 or "")
        try:
            f = self.insert(new_meta, content, owner, all_drives=all_drives)
        except BaseException:
            if content is not None:
                self.state.remove_blob(content.blob)
            raise
        if not f.is_native:
            self.quotas.record_upload(owner, f.size or 0)
        return f

    def update(self, file_id: str, patch: dict[str, Any], *, add_parents: str = "", remove_parents: str = "",
               content: StoredContent | None = None, all_drives: bool = True) -> DriveFile:
        """files.update: patch semantics; parents change only through add/removeParents (comma lists)."""
        f = self.get(file_id, all_drives=all_drives)
        if content is not None:
            self.revisions.ensure_head(f)  # the content being replaced stays as a revision
        if "parents" in patch:
            raise field_not_writable("parents")  # parents change through add/removeParents
        if "name" in patch:
            if not isinstance(patch["name"], str):
                raise bad_request("Invalid value for name.", "name")
            if patch["name"] != f.name:
                f.search_visible_at = self._search_lag(self.rules.search_lag_renamed_s) or f.search_visible_at
            f.name = patch["name"]
        if "mimeType" in patch and isinstance(patch["mimeType"], str) and not f.is_folder:
            f.mime_type = patch["mimeType"]
        if "trashed" in patch:
            f.trashed = bool(patch["trashed"])
        self._apply_simple(f, patch)
        removes = {self.resolve(p) for p in remove_parents.split(",") if p}
        adds = [self.resolve(p) for p in add_parents.split(",") if p]
        if len(adds) > 1 or (adds and adds[0] != f.parent and f.parent not in removes):
            # Items have exactly one parent now; a second one is refused [DISC parents].
            raise DriveError(403, "cannotAddParent", "Increasing the number of parents is not allowed.",
                             location="addParents")
        if adds and adds[0] != f.parent:
            target = self.get(adds[0], all_drives=all_drives)
            if not target.is_folder:
                raise bad_request("The parent is not a folder.", "addParents")
            if self._is_ancestor(f.id, target.id):
                raise bad_request("A folder cannot be moved into itself or its descendants.", "addParents")
            f.parent, f.drive_id = target.id, target.drive_id
        elif not adds and f.parent in removes:
            raise DriveError(403, "cannotRemoveParent", "An item must keep one parent.",
                             location="removeParents")
        old_blob = None
        if content is not None:
            old_blob, f.blob, f.size = f.blob, content.blob, content.size
            f.md5, f.sha1, f.sha256 = content.md5, content.sha1, content.sha256
        if "modifiedTime" in patch:
            f.modified = parse_time(patch["modifiedTime"], "modifiedTime")
        elif content is not None or patch:
            f.modified = rfc3339(self.state.clock.now())
        f.version += 1
        self._save(f)
        if content is not None:
            self.revisions.record(f)
        if old_blob and old_blob != f.blob and not self.revisions.holds(old_blob):
            self.state.remove_blob(old_blob)
        return self.get(f.id)

    def delete(self, file_id: str, *, all_drives: bool = True) -> None:
        """Permanent delete; a folder takes its descendants (and their blobs) with it."""
        f = self.get(file_id, all_drives=all_drives)
        if f.id == self.root_id:
            raise DriveError(403, "cannotDeleteRoot", "The root folder cannot be deleted.", location="fileId")
        doomed = list(self._subtree(f))
        now = rfc3339(self.state.clock.now())
        with self.state.tx() as db:
            db.executemany("DELETE FROM drive_files WHERE id=?", [(d.id,) for d in doomed])
            for d in doomed:
                log_change(db, d.id, now, removed=True)
        self.revisions.drop(doomed)
        for d in doomed:
            self.state.remove_blob(d.blob)

    # --- internals ---------------------------------------------------------------------------------------

    def _apply_simple(self, f: DriveFile, meta: dict[str, Any]) -> None:
        if "description" in meta:
            f.description = None if meta["description"] is None else str(meta["description"])
        if "starred" in meta:
            f.starred = bool(meta["starred"])
        client = self.client()
        f.properties = merge_properties(f.properties, meta.get("properties"), "properties",
                                        len(f.app_props(client)))
        f.set_app_props(client, merge_properties(f.app_props(client), meta.get("appProperties"), "appProperties",
                                                 len(f.properties)))

    def _search_lag(self, lag_s: float) -> float:
        """The emulated time from which search sees an item changed now (0: at once)."""
        return self.state.clock.timestamp() + lag_s if lag_s > 0 else 0.0

    def _subtree(self, f: DriveFile) -> Iterator[DriveFile]:
        stack = [f]
        while stack:
            cur = stack.pop()
            yield cur
            if cur.is_folder:
                stack.extend(self.children(cur.id))

    def _is_ancestor(self, maybe_ancestor: str, fid: str) -> bool:
        cur: DriveFile | None = self.find(fid)
        while cur is not None:
            if cur.id == maybe_ancestor:
                return True
            cur = self.find(cur.parent) if cur.parent else None
        return False

    def _values(self, f: DriveFile) -> list[Any]:
        vals: list[Any] = []
        for k in _COLUMNS:
            if k == "seq":
                continue
            v = getattr(f, k)
            vals.append(json.dumps(v) if k in _JSON_COLUMNS else v)
        return vals

    def _insert(self, f: DriveFile) -> None:
        cols = [k for k in _COLUMNS if k != "seq"]
        try:
            with self.state.tx() as db:
                db.execute(f"INSERT INTO drive_files({','.join(cols)}) VALUES({','.join('?' * len(cols))})",
                           self._values(f))
                log_change(db, f.id, rfc3339(self.state.clock.now()))
        except sqlite3.IntegrityError:  # two creates racing with the same pre-generated id
            raise DriveError(409, "duplicate", "A file already exists with the provided ID.", location="id") from None

    def insert_many(self, files: Iterable[DriveFile], batch: int = 20_000) -> int:
        """Bulk insert for seeding: complete rows, parents before their children, ids unique (not
        checked beyond the table's own constraint); `batch` rows per transaction, each with its change
        entry. Storage usage follows through the quota triggers. Returns the number inserted."""
        cols = [k for k in _COLUMNS if k != "seq"]
        sql = f"INSERT INTO drive_files({','.join(cols)}) VALUES({','.join('?' * len(cols))})"
        source, count = iter(files), 0
        while chunk := list(itertools.islice(source, batch)):
            now = rfc3339(self.state.clock.now())
            with self.state.tx() as db:
                db.executemany(sql, [self._values(f) for f in chunk])
                db.executemany("INSERT INTO drive_changes(file_id, time, removed) VALUES(?,?,0)",
                               [(f.id, now) for f in chunk])
            count += len(chunk)
        return count

    def _save(self, f: DriveFile) -> None:
        cols = [k for k in _COLUMNS if k != "seq"]
        with self.state.tx() as db:
            db.execute(f"UPDATE drive_files SET {','.join(c + '=?' for c in cols)} WHERE id=?",
                       [*self._values(f), f.id])
            log_change(db, f.id, rfc3339(self.state.clock.now()))

