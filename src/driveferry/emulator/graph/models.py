"""The OneDrive for Business drive model: items, names, quota and change tracking, without HTTP.

One drive per data directory (the signed-in user's), kept in the shared SQLite database (`graph_*`
tables) with file content as blob files. Rules enforced here, as Business applies them:

- names: no `/ \\ * < > ? : | # %`, no leading `~`, no trailing `.`, not empty (400 invalidRequest);
- names are unique per folder, case-insensitively (409 nameAlreadyExists);
- conflict behaviours `fail | replace | rename` ("name 1.txt", "name 2.txt", ...);
- every change bumps the item's `seq` (the delta cursor); deletes leave a tombstone so delta can report
  them with the `deleted` facet; `eTag` version moves on any change, `cTag` version on content changes;
- times are whole seconds in UTC, rendered like `2021-03-11T18:49:47Z`.

Python API for seeding and tests (all raise `errors.GraphError` subclasses on rule violations):

    m = GraphModel(state)
    root = m.root()
    folder, created = m.create_folder(root.id, "Docs")
    f = m.create_file(folder.id, "a.txt", [b"hello"], modified=datetime(...))
    nb = m.create_package(root.id, "Notebook")                # OneNote package, no file/folder facet
    m.get(f.id); m.by_path("/Docs/a.txt"); m.resolve(folder.id, "a.txt"); m.children(folder.id)
    m.update(f.id, name="b.txt", parent_id=root.id); m.delete(f.id)
    m.corrupt(f.id)                                           # flip a stored byte, keep the metadata hash
    m.drop_hash(f.id)                                         # report no quickXorHash (as right after upload)
    m.set_quota(10 * 2**30); m.quota(); m.expire_delta_tokens()
    m.drive_id, m.root_id                                     # what credentials()["graph"] reports

Realism (`m.rules`, a `GraphRules`, set by the realism profile; all off by default): SharePoint-library
rewriting of Office files uploaded over HTTP, transient fragment 404s and Business ignoring `fileSize`
(the last two applied by sessions.py). `m.on_event(name)` counts each behaviour that fires.
"""

from __future__ import annotations

import base64
import itertools
import mimetypes
import os
import secrets
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from driveferry.emulator.generate import install_derived
from driveferry.emulator.graph.errors import (
    AccessDenied,
    InvalidRequest,
    ItemNotFound,
    NameAlreadyExists,
    QuotaLimitReached,
    ResourceModified,
)
from driveferry.emulator.graph.items import (
    CONFLICT_BEHAVIOURS,
    DEFAULT_QUOTA_BYTES,
    Item,
    check_name,
    check_path_length,
    iso,
    new_item_id,
    parse_time,
    row_to_item,
)
from driveferry.emulator.graph.rules import OFFICE_EXTENSIONS, GraphRules, no_event, sharepoint_trailer
from driveferry.emulator.graph.sites import SiteStore
from driveferry.emulator.graph.totals import install as install_totals
from driveferry.emulator.graph.versions import VersionStore
from driveferry.emulator.state import CALLER, State
from driveferry.integrity.hashes import QuickXor

_SCHEMA = """
CREATE TABLE IF NOT EXISTS graph_items (
    id TEXT PRIMARY KEY, parent_id TEXT, name TEXT NOT NULL, kind TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0, blob TEXT, qxh TEXT, mime TEXT, package_type TEXT,
    created TEXT NOT NULL, modified TEXT NOT NULL, fs_created TEXT NOT NULL, fs_modified TEXT NOT NULL,
    guid TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1, cversion INTEGER NOT NULL DEFAULT 1,
    deleted INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS graph_items_name ON graph_items(parent_id, name COLLATE NOCASE)
    WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS graph_items_seq ON graph_items(seq);
"""

__all__ = ["CONFLICT_BEHAVIOURS", "OFFICE_EXTENSIONS", "GraphModel", "GraphRules", "Item", "check_name",
           "check_path_length", "iso",
           "new_item_id", "parse_time"]

class GraphModel:
    """The drive (see the module docstring for the API). Thread-safe through State's lock."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.rules = GraphRules()
        self.on_event: Callable[[str], None] = no_event
        with state.lock:
            state.db.executescript(_SCHEMA)
        self.drive_id = state.get_meta("graph.drive_id", "")
        if not self.drive_id:
            # Business drive ids look like "b!6SQl0y4WHk…" (api-notes 8.1).
            self.drive_id = "b!" + base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("=")
            state.set_meta("graph.drive_id", self.drive_id)
        rows = state.query("SELECT id FROM graph_items WHERE kind='root' ORDER BY seq LIMIT 1")
        if rows:
            self.root_id = str(rows[0]["id"])
        else:
            self.root_id = new_item_id()
            now = self._now()
            with state.tx() as db:
                db.execute("INSERT INTO graph_items(id, parent_id, name, kind, created, modified, fs_created,"
                           " fs_modified, guid, seq) VALUES(?,?,?,?,?,?,?,?,?,1)",
                           (self.root_id, None, "root", "root", now, now, now, now, str(uuid.uuid4()).upper()))
        with state.lock:
            install_totals(state.db)
        self.versions = VersionStore(state)  # the content each replace took over (graph/versions.py)
        self.sites = SiteStore(state)  # SharePoint sites; each library a drive with a root of its own
        install_derived(state)  # generated seed files' blobs are written on first read

    # --- reading ---------------------------------------------------------------------------------------

    def _now(self) -> str:
        return iso(self.state.clock.now())

    def root(self) -> Item:
        return self.get(self.root_id)

    def get(self, item_id: str) -> Item:
        """The live item with this id (or the alias "root"); ItemNotFound otherwise."""
        if item_id == "root":
            item_id = self.root_id
        rows = self.state.query("SELECT * FROM graph_items WHERE id=? AND deleted=0", (item_id,))
        if not rows:
            raise ItemNotFound("The resource could not be found.")
        return row_to_item(rows[0])

    def child(self, parent_id: str, name: str) -> Item | None:
        rows = self.state.query("SELECT * FROM graph_items WHERE parent_id=? AND name=? COLLATE NOCASE"
                                " AND deleted=0", (parent_id, name))
        return row_to_item(rows[0]) if rows else None

    def resolve(self, base_id: str, path: str) -> Item:
        """The item at `path` (slash-separated, already percent-decoded) relative to `base_id`."""
        item = self.get(base_id)
        for seg in (s for s in path.split("/") if s):
            found = self.child(item.id, seg) if item.is_folder else None
            if found is None:
                raise ItemNotFound("The resource could not be found.")
            item = found
        return item

    def by_path(self, path: str) -> Item:
        return self.resolve(self.root_id, path)

    def root_of(self, item_id: str) -> str:
        """The id of the drive root above an item (the user's OneDrive, or a library's: graph/sites.py)."""
        rows = self.state.query(
            "WITH RECURSIVE up(id, parent_id) AS (SELECT id, parent_id FROM graph_items WHERE id=? UNION ALL"
            " SELECT g.id, g.parent_id FROM graph_items g JOIN up ON g.id=up.parent_id)"
            " SELECT id FROM up WHERE parent_id IS NULL", (item_id,))
        return str(rows[0]["id"]) if rows else self.root_id

    def children(self, folder_id: str, after: tuple[str, str] | None = None, limit: int = 1000) -> list[Item]:
        """Live children ordered by (lower(name), id); `after` is the (name, id) of the previous page's last
        item. Both sides go through SQLite's lower() (ASCII-only) so the cursor and the order agree."""
        folder = self.get(folder_id)
        if not folder.is_folder:
            raise ItemNotFound("The item is not a folder.")
        sql = "SELECT * FROM graph_items WHERE parent_id=? AND deleted=0"
        args: list[object] = [folder.id]
        if after:
            sql += " AND (lower(name) > lower(?) OR (lower(name) = lower(?) AND id > ?))"
            args += [after[0], after[0], after[1]]
        sql += " ORDER BY lower(name), id LIMIT ?"
        return [row_to_item(r) for r in self.state.query(sql, [*args, limit])]

    def child_count(self, folder_id: str) -> int:
        rows = self.state.query("SELECT COUNT(*) AS n FROM graph_items WHERE parent_id=? AND deleted=0",
                                (folder_id,))
        return int(rows[0]["n"])

    def descendant_ids(self, folder_id: str, include_deleted: bool = False) -> list[str]:
        live = "" if include_deleted else " AND g.deleted=0"
        rows = self.state.query(
            "WITH RECURSIVE t(id) AS (SELECT ? UNION ALL SELECT g.id FROM graph_items g JOIN t ON g.parent_id=t.id"
            f"{live}) SELECT id FROM t", (folder_id,))
        return [str(r["id"]) for r in rows]

    def folder_size(self, folder_id: str) -> int:
        """Total size of live descendants (Business reports it as the folder's `size`): a running total
        kept by the database (graph/totals.py), not a sum over the subtree."""
        rows = self.state.query("SELECT size FROM graph_items WHERE id=? AND deleted=0", (folder_id,))
        return int(rows[0]["size"]) if rows else 0

    def path_of(self, item: Item) -> str:
        """"/a/b" for an item (root is "")."""
        parts: list[str] = []
        cur = item
        while cur.parent_id is not None:
            parts.append(cur.name)
            rows = self.state.query("SELECT * FROM graph_items WHERE id=?", (cur.parent_id,))
            cur = row_to_item(rows[0])
        return "".join("/" + p for p in reversed(parts))

    def content_path(self, item: Item) -> Path | None:
        return self.state.blob_path(item.blob) if item.blob else None

    # --- quota -----------------------------------------------------------------------------------------

    def _quota_numbers(self) -> tuple[int, int, int]:
        """(total, used, remaining) bytes; used counts live files only (no recycle bin is emulated): the
        root's running total (graph/totals.py)."""
        total = int(self.state.get_meta("graph.quota_total", str(DEFAULT_QUOTA_BYTES)))
        used = self.folder_size(self.root_id)
        return total, used, max(0, total - used)

    def quota(self) -> dict[str, object]:
        """The drive resource's `quota` facet (api-notes 8.2)."""
        total, used, remaining = self._quota_numbers()
        frac = used / total if total else 1.0
        state = "exceeded" if remaining == 0 else "critical" if frac >= 0.99 else "nearing" if frac >= 0.9 \
            else "normal"
        return {"total": total, "used": used, "remaining": remaining, "deleted": 0, "state": state}

    def set_quota(self, total_bytes: int) -> None:
        self.state.set_meta("graph.quota_total", str(int(total_bytes)))

    def check_quota(self, extra_bytes: int) -> None:
        """507 quotaLimitReached if `extra_bytes` more would not fit."""
        if extra_bytes > self._quota_numbers()[2]:
            raise QuotaLimitReached("Insufficient Space Available", "quotaLimitReached")

    # --- writing ---------------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        rows = self.state.db.execute("SELECT COALESCE(MAX(seq),0) AS n FROM graph_items").fetchall()
        return int(rows[0]["n"]) + 1

    def current_seq(self) -> int:
        with self.state.lock:
            return self._next_seq() - 1

    def _target(self, parent_id: str, name: str, conflict: str) -> tuple[Item, str, Item | None]:
        """(parent, final name, existing item to replace) under a conflict behaviour."""
        check_name(name)
        if conflict not in CONFLICT_BEHAVIOURS:
            raise InvalidRequest(f"Invalid conflictBehavior {conflict!r}")
        parent = self.get(parent_id)
        if not parent.is_folder:
            raise InvalidRequest("The parent item is not a folder.", "invalidParent")
        check_path_length(self.path_of(parent), name)
        existing = self.child(parent.id, name)
        if existing is None:
            return parent, name, None
        if conflict == "fail":
            raise NameAlreadyExists("The specified item name already exists.")
        if conflict == "replace":
            return parent, existing.name, existing
        stem, dot, ext = name.rpartition(".")
        stem, ext = (stem, dot + ext) if stem else (name, "")
        n = 1
        while self.child(parent.id, f"{stem} {n}{ext}") is not None:
            n += 1
        return parent, f"{stem} {n}{ext}", None

    def create_folder(self, parent_id: str, name: str, conflict: str = "fail",
                      fs_created: str | None = None, fs_modified: str | None = None) -> tuple[Item, bool]:
        """(folder, created). `replace` on an existing folder returns it unchanged (created False)."""
        with self.state.lock:
            parent, final, existing = self._target(parent_id, name, conflict)
            if existing is not None:
                if existing.is_folder:
                    return existing, False
                self.delete(existing.id)
            return self._insert(parent.id, final, "folder", fs_created=fs_created, fs_modified=fs_modified), True

    def create_package(self, parent_id: str, name: str, package_type: str = "oneNote") -> Item:
        """A package item (OneNote notebook): neither file nor folder, cannot be downloaded."""
        with self.state.lock:
            parent, final, _ = self._target(parent_id, name, "fail")
            return self._insert(parent.id, final, "package", package_type=package_type)

    def create_file(self, parent_id: str, name: str, chunks: Iterable[bytes], modified: datetime | None = None,
                    created: datetime | None = None, conflict: str = "replace") -> Item:
        """Write a file from `chunks` (streamed to a blob, hashed on the way). Replace keeps the id."""
        self._target(parent_id, name, conflict)  # fail fast before reading the body
        blob = self.state.new_blob_path()
        qx, size = QuickXor(), 0
        try:
            with open(blob, "wb") as fh:
                for data in chunks:
                    if data and data.count(0) == len(data):
                        fh.seek(len(data), os.SEEK_CUR)  # all zeros: leave a hole (big seeded disk images)
                    else:
                        fh.write(data)
                    qx.update(data)
                    size += len(data)
                fh.truncate(size)  # a trailing hole still counts as content
        except BaseException:
            blob.unlink(missing_ok=True)
            raise
        fs_m = iso(modified) if modified else None
        fs_c = iso(created) if created else fs_m
        try:
            return self.commit_content(parent_id, name, conflict, blob.name, size, qx, fs_c, fs_m)
        except BaseException:
            blob.unlink(missing_ok=True)
            raise

    def commit_content(self, parent_id: str, name: str, conflict: str, blob: str, size: int, qx: QuickXor,
                       fs_created: str | None, fs_modified: str | None, target_id: str | None = None) -> Item:
        """Make `blob` the content of a new or replaced file (used by uploads and `create_file`)."""
        size = self._sharepoint_rewrite(name, blob, size, qx)
        qxh = base64.b64encode(qx.digest()).decode() if size else None
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        with self.state.lock:
            if target_id is not None:
                existing: Item | None = self.get(target_id)
            else:
                parent, name, existing = self._target(parent_id, name, conflict)
                parent_id = parent.id
            old_size = existing.size if existing is not None and existing.kind == "file" else 0
            self.check_quota(size - old_size)
            if existing is None:
                return self._insert(parent_id, name, "file", size=size, blob=blob, qxh=qxh, mime=mime,
                                    fs_created=fs_created, fs_modified=fs_modified)
            if existing.kind != "file":
                raise NameAlreadyExists("A folder or package with this name already exists.")
            now = self._now()
            with self.state.tx() as db:
                db.execute("UPDATE graph_items SET size=?, blob=?, qxh=?, mime=?, modified=?, fs_modified=?,"
                           " fs_created=COALESCE(?, fs_created), version=version+1, cversion=cversion+1, seq=?"
                           " WHERE id=?", (size, blob, qxh, mime, now, fs_modified or now, fs_created, self._next_seq(),
                                           existing.id))
            self.versions.retire(existing)  # the replaced content stays as a previous version
            return self.get(existing.id)

    def _sharepoint_rewrite(self, name: str, blob: str, size: int, qx: QuickXor) -> int:
        """Append the library's metadata to an Office file uploaded over HTTP; the new size.

        Only uploads are rewritten (the model API seeds files as they already are on the server)."""
        extra = self.rules.sharepoint_rewrite_bytes
        caller = CALLER.get()
        if (extra <= 0 or caller is None or not caller.route.startswith("graph.upload")
                or not name.lower().endswith(self.rules.office_extensions)):
            return size
        trailer = sharepoint_trailer(name, extra)
        with open(self.state.blob_path(blob), "r+b") as fh:
            fh.seek(size)
            fh.write(trailer)
        qx.update(trailer)
        self.on_event("graph.sharepoint_rewrites")
        return size + len(trailer)

    def _insert(self, parent_id: str, name: str, kind: str, size: int = 0, blob: str | None = None,
                qxh: str | None = None, mime: str | None = None, package_type: str | None = None,
                fs_created: str | None = None, fs_modified: str | None = None) -> Item:
        item_id, now = new_item_id(), self._now()
        with self.state.tx() as db:
            db.execute("INSERT INTO graph_items(id, parent_id, name, kind, size, blob, qxh, mime, package_type,"
                       " created, modified, fs_created, fs_modified, guid, seq) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (item_id, parent_id, name, kind, size, blob, qxh, mime, package_type, now, now,
                        fs_created or fs_modified or now, fs_modified or now, str(uuid.uuid4()).upper(),
                        self._next_seq()))
            self._touch(db, parent_id)
        return self.get(item_id)

    def insert_many(self, rows: Iterable[tuple[str, str, str, str, int, str | None, str | None, str]],
                    batch: int = 20_000) -> int:
        """Bulk insert for seeding: rows (id, parent_id, name, kind "folder" | "file", size, blob, qxh,
        fs_modified), parents before their children, names valid and unique per folder (the unique index
        still refuses a duplicate). `batch` rows per transaction; folder sizes and the quota follow
        through the totals triggers. Returns the number of rows inserted."""
        mimes: dict[str, str] = {}
        source, count = iter(rows), 0
        while chunk := list(itertools.islice(source, batch)):
            values: list[tuple[object, ...]] = []
            now = self._now()
            with self.state.tx() as db:
                seq = self._next_seq()
                for k, (item_id, parent_id, name, kind, size, blob, qxh, fs_modified) in enumerate(chunk):
                    mime = None
                    if kind == "file":
                        ext = name.rpartition(".")[2].lower() if "." in name else ""
                        if ext not in mimes:
                            mimes[ext] = mimetypes.guess_type(name)[0] or "application/octet-stream"
                        mime = mimes[ext]
                    values.append((item_id, parent_id, name, kind, size, blob, qxh, mime, now, now, fs_modified,
                                   fs_modified, str(uuid.uuid4()).upper(), seq + k))
                db.executemany("INSERT INTO graph_items(id, parent_id, name, kind, size, blob, qxh, mime, created,"
                               " modified, fs_created, fs_modified, guid, seq) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                               values)
            count += len(chunk)
        return count

    def _touch(self, db: object, folder_id: str | None) -> None:
        """A folder's eTag moves when its children change. Its delta `seq` does not: delta reports a folder
        for its own changes only, which keeps new parents ahead of their new children in a delta page."""
        if folder_id is not None:
            db.execute("UPDATE graph_items SET version=version+1 WHERE id=?", (folder_id,))  # type: ignore[attr-defined]

    def update(self, item_id: str, name: str | None = None, parent_id: str | None = None,
               fs_created: str | None = None, fs_modified: str | None = None, if_match: str | None = None) -> Item:
        """Rename, move and/or set fileSystemInfo. Conflicts fail (409); moving into itself is 400."""
        with self.state.lock:
            item = self.get(item_id)
            self._check_etag(item, if_match)
            if item.kind == "root":
                raise AccessDenied("The root folder cannot be renamed or moved.")
            new_name = check_name(name) if name is not None else item.name
            new_parent = self.get(parent_id).id if parent_id is not None else item.parent_id
            assert new_parent is not None
            if new_parent != item.parent_id:
                if not self.get(new_parent).is_folder:
                    raise InvalidRequest("The new parent is not a folder.", "invalidParent")
                if new_parent in self.descendant_ids(item.id):
                    raise InvalidRequest("An item cannot be moved into itself.", "invalidParent")
            other = self.child(new_parent, new_name)
            if other is not None and other.id != item.id:
                raise NameAlreadyExists("The specified item name already exists.")
            with self.state.tx() as db:
                db.execute("UPDATE graph_items SET name=?, parent_id=?, fs_created=COALESCE(?, fs_created),"
                           " fs_modified=COALESCE(?, fs_modified), modified=?, version=version+1, seq=? WHERE id=?",
                           (new_name, new_parent, fs_created, fs_modified, self._now(), self._next_seq(), item.id))
                if new_parent != item.parent_id:
                    self._touch(db, item.parent_id)
                    self._touch(db, new_parent)
            return self.get(item.id)

    def delete(self, item_id: str, if_match: str | None = None) -> None:
        """Delete an item and its descendants, leaving tombstones for delta; frees their blobs."""
        with self.state.lock:
            item = self.get(item_id)
            self._check_etag(item, if_match)
            if item.kind == "root":
                raise AccessDenied("The root folder cannot be deleted.")
            ids = self.descendant_ids(item.id)
            blobs = [r["blob"] for r in self.state.query(
                f"SELECT blob FROM graph_items WHERE id IN ({','.join('?' * len(ids))})", ids)]
            now = self._now()
            with self.state.tx() as db:
                for i in ids:
                    # modified doubles as the change time, which timestamp delta tokens rely on
                    db.execute("UPDATE graph_items SET deleted=1, blob=NULL, modified=?, seq=? WHERE id=?",
                               (now, self._next_seq(), i))
                self._touch(db, item.parent_id)
            for b in blobs:
                self.state.remove_blob(b)
            self.versions.drop(ids)

    def _check_etag(self, item: Item, if_match: str | None) -> None:
        if if_match and if_match.strip() not in ("*", item.etag, item.ctag):
            raise ResourceModified("ETag does not match current item's value", "entityTagDoesNotMatch")

    def corrupt(self, item_id: str, offset: int | None = None) -> int:
        """Flip one stored byte of a file, keeping size and metadata hash. Returns the offset flipped."""
        item = self.get(item_id)
        path = self.content_path(item)
        if item.kind != "file" or path is None or item.size == 0:
            raise InvalidRequest("Only non-empty files can be corrupted.")
        pos = offset if offset is not None else item.size // 2
        with open(path, "r+b") as fh:
            fh.seek(pos)
            b = fh.read(1)
            fh.seek(pos)
            fh.write(bytes([b[0] ^ 0xFF]))
        return pos

    def drop_hash(self, item_id: str) -> None:
        """Forget a file's quickXorHash, as Business sometimes reports none right after an upload
        (api-notes 8.1): clients must then say "unverified", never "ok"."""
        item = self.get(item_id)
        if item.kind != "file":
            raise InvalidRequest("Only files have hashes.")
        with self.state.tx() as db:
            db.execute("UPDATE graph_items SET qxh=NULL WHERE id=?", (item.id,))

    # --- delta -----------------------------------------------------------------------------------------

    def enumerate(self, scope_id: str, after: tuple[int, str], limit: int) -> list[tuple[int, Item]]:
        """Live items under `scope_id` (itself included) as (depth, item), ordered by (depth, id) after
        the cursor `after`: an initial delta lists every parent before its children."""
        rows = self.state.query(
            "WITH RECURSIVE t(id, depth) AS (SELECT ?, 0 UNION ALL SELECT g.id, t.depth + 1 FROM graph_items g"
            " JOIN t ON g.parent_id=t.id AND g.deleted=0) SELECT g.*, t.depth AS depth FROM graph_items g"
            " JOIN t ON g.id=t.id WHERE g.deleted=0 AND (t.depth > ? OR (t.depth = ? AND g.id > ?))"
            " ORDER BY t.depth, g.id LIMIT ?", (scope_id, after[0], after[0], after[1], limit))
        out = []
        for r in rows:
            d = dict(r)
            depth = int(d.pop("depth"))
            out.append((depth, row_to_item(d)))
        return out

    def changes(self, scope_id: str, since: int, after: tuple[int, str], upto: int, limit: int) -> list[Item]:
        """Items under `scope_id` (itself included), tombstones too, with since < seq <= upto, ordered by
        (seq, id) after the cursor `after`: the latest state of each item changed since `since`."""
        # the whole table is the user's drive only while no library shares it
        whole = scope_id == self.root_id and not self.sites.any()
        scope = None if whole else set(self.descendant_ids(scope_id, include_deleted=True))
        out: list[Item] = []
        cursor = after
        while len(out) < limit:
            rows = self.state.query(
                "SELECT * FROM graph_items WHERE seq > ? AND seq <= ? AND (seq > ? OR (seq = ? AND id > ?))"
                " ORDER BY seq, id LIMIT ?", (since, upto, cursor[0], cursor[0], cursor[1], limit))
            if not rows:
                break
            for r in rows:
                item = row_to_item(r)
                cursor = (item.seq, item.id)
                if scope is None or item.id in scope:
                    out.append(item)
                    if len(out) == limit:
                        break
        return out

    def seq_at(self, when: str) -> int:
        """The change sequence as it stood at `when` (an `iso` time): every change is stamped with the
        emulator clock in `modified` as it takes its seq, so the two orders agree."""
        rows = self.state.query("SELECT COALESCE(MAX(seq),0) AS n FROM graph_items WHERE modified <= ?", (when,))
        return int(rows[0]["n"])

    def delta_epoch(self) -> int:
        """Delta tokens carry the epoch they were issued in; a token from an older epoch is too old."""
        return int(self.state.get_meta("graph.delta_epoch", "0"))

    def expire_delta_tokens(self) -> None:
        """Make every delta token issued so far answer 410 resyncRequired (as a too-old token does)."""
        self.state.set_meta("graph.delta_epoch", str(self.delta_epoch() + 1))
