"""Drive's changes feed as a DeltaLister: what changed under the provider's root since a cursor.

The cursor is a Drive page token (`changes.getStartPageToken`; tokens do not expire, per
developers.google.com/drive/api/reference/rest/v3/changes/getStartPageToken). `delta(cursor)` reads
`changes.list` to its last page and keeps the newStartPageToken as the next cursor ("Retrieve changes"
guide, developers.google.com/drive/api/guides/manage-changes).

Each change carries the file's current state, with its parent id but no path. Paths are resolved by
walking parents: first among the files of the same answer, then with one `files.get` per unknown
folder (memoised); a file whose chain does not reach the root folder is outside and is dropped. An item
permanently deleted (`removed: true`) or trashed (`file.trashed`, inherited from a trashed folder) is
reported as OneDrive's delta reports deletions: properties["deleted"] == "true", path "".

Drive reports a renamed or moved folder, not its contents, though every descendant's path changed;
so each changed folder inside the root is listed (provider.list, recursively) and its descendants are
reported too. A file changed in place costs no listing at all.

Not covered: a new same-named twin of an older file is reported like any file (a full walk would
report the older one as the winner; see GDriveProvider).
"""

from __future__ import annotations

import posixpath
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from driveferry.errors import NotFoundError
from driveferry.providers.base import Entry, Kind
from driveferry.providers.gdrive.api import FILE_FIELDS, PAGE_SIZE, Raw
from driveferry.providers.gdrive.errors import translate

if TYPE_CHECKING:
    from driveferry.providers.gdrive.provider import GDriveProvider

_DELETED = MappingProxyType({"deleted": "true"})
CHANGE_FIELDS = f"nextPageToken,newStartPageToken,changes(fileId,removed,file({FILE_FIELDS}))"


class GDriveDelta:
    """DeltaLister over one GDriveProvider. No call here retries: the retrying wrapper retries a whole
    `delta`/`latest_cursor` (providers/retrying.py), which is safe since both only read."""

    def __init__(self, provider: GDriveProvider) -> None:
        self.provider = provider

    def _execute(self, make: Any, what: str) -> Raw:
        api = self.provider.api
        try:
            result = make(api.service().changes()).execute(num_retries=0)
        except Exception as exc:  # noqa: BLE001 - translate() is the single mapping point
            raise translate(exc, what=what) from exc
        return result if isinstance(result, dict) else {}

    def _flags(self) -> dict[str, Any]:
        drive_id = self.provider.api.drive_id
        if drive_id:
            return {"supportsAllDrives": True, "includeItemsFromAllDrives": True, "driveId": drive_id}
        return {"supportsAllDrives": True}

    def latest_cursor(self) -> str:
        """DeltaLister: the page token for changes from now on (nothing is listed)."""
        page = self._execute(lambda c: c.getStartPageToken(**self._flags()), "changes start token")
        token = page.get("startPageToken")
        if not token:
            raise NotFoundError(f"{self.provider.name}: changes.getStartPageToken returned no token")
        return str(token)

    def _changes(self, cursor: str) -> tuple[dict[str, dict[str, Any]], str]:
        """The latest change per file id since `cursor`, and the newStartPageToken."""
        latest: dict[str, dict[str, Any]] = {}
        token = cursor
        while True:
            params = {"pageToken": token, "pageSize": PAGE_SIZE, "includeRemoved": True, "spaces": "drive",
                      "fields": CHANGE_FIELDS, **self._flags()}
            page = self._execute(lambda c, p=params: c.list(**p), "list changes")
            for change in page.get("changes", []):
                fid = str(change.get("fileId") or (change.get("file") or {}).get("id") or "")
                if fid:
                    latest.pop(fid, None)  # re-insert: the order is that of each file's latest change
                    latest[fid] = change
            if page.get("nextPageToken"):
                token = str(page["nextPageToken"])
                continue
            return latest, str(page.get("newStartPageToken") or token)

    def delta(self, cursor: str | None) -> tuple[list[Entry], str]:
        """DeltaLister: changes under the root since `cursor`; None lists the whole tree (one walk)."""
        if cursor is None:
            return self._everything()
        latest, new_cursor = self._changes(cursor)
        root = self.provider.root()
        known: dict[str, Raw] = {fid: c["file"] for fid, c in latest.items() if c.get("file")}
        paths: dict[str, str | None] = {root.id: ""}
        out: list[Entry] = []
        seen: set[str] = set()
        folders: list[Entry] = []
        for fid, change in latest.items():
            raw = change.get("file")
            if change.get("removed") or not raw:
                out.append(Entry(id=fid, path="", name="", kind=Kind.FILE, properties=_DELETED))
                continue
            if raw.get("trashed"):
                gone = self.provider.to_entry(raw, "")
                out.append(Entry(id=gone.id, path="", name=gone.name, kind=gone.kind, properties=_DELETED))
                continue
            path = self._path(fid, known, paths)
            if not path:  # outside the root, or the root itself
                continue
            entry = self.provider.to_entry(raw, posixpath.dirname(path))
            out.append(entry)
            seen.add(fid)
            if entry.kind is Kind.FOLDER:
                folders.append(entry)
        for folder in folders:
            out.extend(self._below(folder, seen))
        return out, new_cursor

    def _path(self, fid: str, known: dict[str, Raw], paths: dict[str, str | None]) -> str | None:
        """The path of `fid` relative to the root ("" for the root), None when it is not below it."""
        chain: list[str] = []
        cur: str | None = fid
        base: str | None = None
        while cur is not None:
            if cur in paths:
                base = paths[cur]
                break
            raw = known.get(cur)
            if raw is None:
                try:
                    raw = known[cur] = self.provider.api.get(cur)
                except NotFoundError:
                    break
            if raw.get("trashed") and cur != fid:
                break
            chain.append(cur)
            parents = raw.get("parents") or []
            paths[cur] = None  # provisional: guards against a cycle in a malformed answer
            cur = str(parents[0]) if parents else None
        for item in reversed(chain):
            if base is not None:
                name = str(known[item].get("name") or "")
                base = posixpath.join(base, name) if base else name
            paths[item] = base
        return paths.get(fid)

    def _below(self, folder: Entry, seen: set[str]) -> list[Entry]:
        """Every item below a changed folder, with its current path (those already reported are skipped)."""
        out: list[Entry] = []
        stack = [folder]
        while stack:
            cur = stack.pop()
            for child in self.provider.list(cur):
                if child.kind is Kind.FOLDER:
                    stack.append(child)
                if child.id not in seen:
                    seen.add(child.id)
                    out.append(child)
        return out

    def _everything(self) -> tuple[list[Entry], str]:
        cursor = self.latest_cursor()  # taken first: changes during the walk show up next time
        root = self.provider.root()
        return self._below(root, {root.id}), cursor
