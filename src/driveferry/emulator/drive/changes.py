"""Drive v3 `changes`: a change log behind `changes.getStartPageToken` and `changes.list`.

Every create, update (rename, move, trash, properties), content commit and permanent delete appends
a row to `drive_changes` (the model calls `log_change` inside its own transaction). Page tokens are
change numbers as decimal strings: token T lists the changes numbered T and later.

Behaviour, after the reference (developers.google.com/drive/api/reference/rest/v3/changes/list,
.../changes/getStartPageToken) and the "Retrieve changes" guide
(developers.google.com/drive/api/guides/manage-changes):
- entries come oldest first, each carrying the file's *current* state ("If the file has changed, the
  collection provides the current state of each file"), so a file changed several times since the token
  appears once, at its latest change;
- a page has `nextPageToken` when more changes follow, else `newStartPageToken` to store for next time;
  page tokens do not expire ("The page token doesn't expire");
- trashing is a change with `removed: false` and `file.trashed: true`; `removed: true` (no `file`)
  means the item left the list: permanently deleted. `includeRemoved=false` drops those entries;
- `pageSize` is 1..1000, default 100 (discovery document: minimum 1, maximum 1000); `pageToken` is
  required; `spaces` takes drive, appDataFolder, photos (only `drive` holds anything here);
- shared-drive items are listed only with `driveId` (that drive's) or `includeItemsFromAllDrives`
  (and never with `restrictToMyDrive`); drive roots themselves are not file changes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from driveferry.emulator.drive import fields
from driveferry.emulator.drive.errors import DriveError, invalid_fields, invalid_value
from driveferry.emulator.http import Handler, Request, Response

if TYPE_CHECKING:
    from driveferry.emulator.drive.models import DriveModel

SCHEMA = """
CREATE TABLE IF NOT EXISTS drive_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, file_id TEXT NOT NULL, time TEXT NOT NULL,
    removed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS drive_changes_file ON drive_changes(file_id, seq);
"""

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
SPACES = frozenset({"drive", "appDataFolder", "photos"})
CHANGE_LIST_FIELDS = frozenset({"kind", "nextPageToken", "newStartPageToken", "changes"})
CHANGE_FIELDS = frozenset({"kind", "changeType", "type", "time", "removed", "fileId", "file", "driveId", "drive",
                           "teamDriveId", "teamDrive"})
DEFAULT_CHANGE_LIST = ("kind,nextPageToken,newStartPageToken,"
                       "changes(kind,changeType,time,removed,fileId,file(kind,id,name,mimeType))")


def log_change(db: sqlite3.Connection, file_id: str, time: str, *, removed: bool = False) -> None:
    """Append one change (call inside the model's transaction, so a change and its cause commit together)."""
    db.execute("INSERT INTO drive_changes(file_id, time, removed) VALUES(?,?,?)", (file_id, time, int(removed)))


def _check(mask: fields.Mask, allowed: frozenset[str], nested: dict[str, tuple[frozenset[str], Any]]) -> None:
    for name, sub in mask.items():
        if name != "*" and name not in allowed:
            raise invalid_fields(name)
        if sub is not None and name in nested:
            inner_allowed, inner_nested = nested[name]
            _check(sub, inner_allowed, inner_nested)


def change_list_mask(text: str | None) -> fields.Mask:
    """The mask for a ChangeList: `changes(...)` selects Change fields, `changes(file(...))` File fields."""
    mask = fields.parse(text if text and text.strip() else DEFAULT_CHANGE_LIST)
    _check(mask, CHANGE_LIST_FIELDS, {"changes": (CHANGE_FIELDS, {"file": (fields.FILE_FIELDS, {})})})
    return mask


def _flag(req: Request, name: str, default: bool) -> bool:
    raw = req.arg(name)
    if raw is None or raw == "":
        return default
    if raw.lower() not in ("true", "false"):
        raise invalid_value(name)
    return raw.lower() == "true"


class DriveChanges:
    """The `changes` handlers over one DriveModel (its table is created by the model's schema)."""

    def __init__(self, model: DriveModel) -> None:
        self.m = model

    def next_token(self) -> int:
        rows = self.m.state.query("SELECT COALESCE(MAX(seq), 0) AS s FROM drive_changes")
        return int(rows[0]["s"]) + 1

    def register(self, add: Callable[[str, str, str, Handler], None], v3: str) -> None:
        add("drive.changes.startPageToken", "GET", v3 + "/changes/startPageToken", self.start_page_token)
        add("drive.changes.list", "GET", v3 + "/changes", self.list)

    def start_page_token(self, req: Request) -> Response:
        return Response.json({"kind": "drive#startPageToken", "startPageToken": str(self.next_token())})

    def _token(self, req: Request) -> int:
        raw = req.arg("pageToken")
        if raw is None or raw == "":
            raise DriveError(400, "required", "The 'pageToken' parameter is required for this method.",
                             location="pageToken")
        if not raw.isdigit() or not 1 <= int(raw) <= self.next_token():
            raise invalid_value("pageToken")
        return int(raw)

    def list(self, req: Request) -> Response:
        mask = change_list_mask(req.arg("fields"))
        start = self._token(req)
        raw_size = req.arg("pageSize")
        size = DEFAULT_PAGE_SIZE if not raw_size else int(raw_size) if raw_size.isdigit() else 0
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise invalid_value("pageSize")
        spaces = {s.strip() for s in (req.arg("spaces") or "drive").split(",") if s.strip()}
        if not spaces <= SPACES:
            raise invalid_value("spaces")
        include_removed = _flag(req, "includeRemoved", True)
        my_drive_only = _flag(req, "restrictToMyDrive", False)
        drive_id = req.arg("driveId") or None
        all_drives = _flag(req, "includeItemsFromAllDrives", False) and not my_drive_only
        upto = self.next_token() - 1
        rows = self.m.state.query(
            "SELECT c.file_id, c.seq, c.time FROM drive_changes c JOIN (SELECT file_id, MAX(seq) AS s FROM"
            " drive_changes WHERE seq >= ? AND seq <= ? GROUP BY file_id) l ON c.seq = l.s ORDER BY c.seq",
            (start, upto))
        changes: list[dict[str, Any]] = []
        memo: dict[str, bool] = {}
        next_start = upto + 1
        for row in rows if "drive" in spaces else []:
            if len(changes) == size:
                next_start = int(row["seq"])
                break
            f = self.m.find(row["file_id"])
            if f is None:
                if include_removed:
                    changes.append({"kind": "drive#change", "changeType": "file", "type": "file",
                                    "time": row["time"], "removed": True, "fileId": row["file_id"]})
                continue
            if f.parent is None:  # My Drive's root, a shared drive's root
                continue
            if (drive_id and f.drive_id != drive_id) or (not drive_id and f.drive_id and not all_drives):
                continue
            change = {"kind": "drive#change", "changeType": "file", "type": "file", "time": row["time"],
                      "removed": False, "fileId": f.id, "file": self.m.resource(f, memo)}
            if f.drive_id:
                change["driveId"] = f.drive_id
            changes.append(change)
        body: dict[str, Any] = {"kind": "drive#changeList", "changes": changes}
        if next_start <= upto:
            body["nextPageToken"] = str(next_start)
        else:
            body["newStartPageToken"] = str(upto + 1)
        return Response.json(fields.apply(body, mask))
