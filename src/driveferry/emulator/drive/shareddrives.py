"""Shared drives: drives.create / list / get, and the rules for the files in them.

What Drive serves (developers.google.com/drive/api/reference/rest/v3/drives; guides/about-shareddrives,
enable-shareddrives, limits):

    POST /drive/v3/drives?requestId=ID     drives.create; the requestId makes it idempotent: a repeated
                                           request with the same id is 409 duplicate, never a second drive
    GET  /drive/v3/drives                  drives.list (pageSize 1..100, default 10; pageToken)
    GET  /drive/v3/drives/{driveId}        drives.get; 404 notFound ("Shared drive not found: ID.")

A shared drive's root folder has the drive's id. Its files carry `driveId`, belong to the organisation
(no `owners`; `ownedByMe` false), and are invisible to a files.* call without supportsAllDrives=true
(404, as if absent: enable-shareddrives guide) and to files.list without includeItemsFromAllDrives
(models.py and routes.py enforce both). A shared drive holds at most 400,000 items, files and folders,
trashed ones included; past that a create is 403 teamDriveFileLimitExceeded ("Shared drives limits",
Google Workspace admin help 9310743). The limit is settable here so a test can reach it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from driveferry.emulator.drive.errors import DriveError, bad_request
from driveferry.emulator.drive.records import DriveFile
from driveferry.emulator.state import State

ITEM_LIMIT = 400_000  # items (files and folders, trashed included) in one shared drive
_LIMIT_KEY = "drive.shared_drive_item_limit"
DEFAULT_PAGE, MAX_PAGE = 10, 100


def install(state: State) -> None:
    """The index that keeps the per-drive item count cheap, and the requestId ledger of drives.create."""
    with state.lock:
        state.db.executescript("CREATE INDEX IF NOT EXISTS drive_files_drive ON drive_files(drive_id);"
                               "CREATE TABLE IF NOT EXISTS drive_create_requests (request_id TEXT PRIMARY KEY,"
                               " drive_id TEXT NOT NULL)")


def item_limit(state: State) -> int:
    return int(state.get_meta(_LIMIT_KEY, str(ITEM_LIMIT)))


def set_item_limit(state: State, items: int) -> None:
    """Change the per-shared-drive item limit (tests; real Drive's is ITEM_LIMIT)."""
    state.set_meta(_LIMIT_KEY, str(int(items)))


def check_room(state: State, drive_id: str | None) -> None:
    """403 teamDriveFileLimitExceeded when a shared drive already holds its limit of items."""
    if drive_id is None:
        return
    rows = state.query("SELECT COUNT(*) AS n FROM drive_files WHERE drive_id=? AND id<>?", (drive_id, drive_id))
    if int(rows[0]["n"]) >= item_limit(state):
        raise DriveError(403, "teamDriveFileLimitExceeded", "The file limit for this shared drive has been exceeded.")


def drive_resource(root: DriveFile) -> dict[str, Any]:
    """The Drive resource of a shared drive (its root folder holds its id, name and creation time)."""
    return {"kind": "drive#drive", "id": root.id, "name": root.name, "createdTime": root.created, "hidden": False,
            "capabilities": {"canAddChildren": True, "canManageMembers": True, "canShare": True,
                             "canDeleteDrive": True, "canRenameDrive": True}}


class SharedDriveRoutes:
    """drives.* over a DriveModel (whose create_shared_drive makes the root folder)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        install(model.state)

    def _drives(self) -> list[DriveFile]:
        return [f for f in self.model.all_files() if f.drive_id is not None and f.id == f.drive_id]

    def create(self, req: Any) -> Any:
        from driveferry.emulator.drive.media import json_body
        from driveferry.emulator.http import Response
        request_id = req.arg("requestId")
        if not request_id:
            raise DriveError(400, "required", "Required parameter: requestId", location="requestId")
        body = json_body(req)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("A shared drive needs a name.", "name")
        state = self.model.state
        if state.query("SELECT 1 FROM drive_create_requests WHERE request_id=?", (request_id,)):
            raise DriveError(409, "duplicate", "A shared drive with this requestId already exists.",
                             location="requestId")
        root = self.model.create_shared_drive(name)
        with state.tx() as db:
            db.execute("INSERT INTO drive_create_requests VALUES(?,?)", (request_id, root.id))
        return Response.json(drive_resource(root))

    def list(self, req: Any) -> Any:
        from driveferry.emulator.http import Response
        try:
            size = int(req.arg("pageSize") or DEFAULT_PAGE)
            token = req.arg("pageToken")
            start = int(json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["o"]) if token else 0
        except (ValueError, KeyError, TypeError):
            raise DriveError(400, "invalid", "Invalid value for pageSize or pageToken.", location="pageToken") from None
        if not 1 <= size <= MAX_PAGE:
            raise DriveError(400, "invalid", f"Invalid value for pageSize: {size}; 1 to {MAX_PAGE}.",
                             location="pageSize")
        drives = self._drives()
        body: dict[str, Any] = {"kind": "drive#driveList",
                                "drives": [drive_resource(d) for d in drives[start:start + size]]}
        if start + size < len(drives):
            body["nextPageToken"] = base64.urlsafe_b64encode(json.dumps({"o": start + size}).encode()).decode()
        return Response.json(body)

    def get(self, req: Any) -> Any:
        from driveferry.emulator.http import Response
        found = self.model.find(req.params["drive"])
        if found is None or found.drive_id != found.id:
            raise DriveError(404, "notFound", f"Shared drive not found: {req.params['drive']}.", location="driveId")
        return Response.json(drive_resource(found))


def register_shared_drives(add: Any, v3: str, model: Any) -> SharedDriveRoutes:
    """Add the drives.* routes through the Drive module's `add(name, method, pattern, fn)`."""
    routes = SharedDriveRoutes(model)
    add("drive.drives.create", "POST", v3 + "/drives", routes.create)
    add("drive.drives.list", "GET", v3 + "/drives", routes.list)
    add("drive.drives.get", "GET", v3 + r"/drives/(?P<drive>[^/]+)", routes.get)
    return routes
