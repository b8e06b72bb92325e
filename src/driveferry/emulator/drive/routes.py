"""Drive v3 over HTTP: route table, metadata handlers and the `/_emulator/drive/*` control routes.

The server imports `DriveApi`; it registers every route under the names faults and counters key on
(drive.files.list, drive.upload.chunk, ...). Handlers parse the request, call the model and render
with `fields`; every failure is a `DriveError` in Google's JSON shape, never a 500.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from driveferry.emulator.drive import fields
from driveferry.emulator.drive.changes import DriveChanges
from driveferry.emulator.drive.errors import DriveError, bad_request, drive_errors, invalid_value
from driveferry.emulator.drive.hashing import write_blob
from driveferry.emulator.drive.media import MediaHandlers, json_body
from driveferry.emulator.drive.models import DriveModel
from driveferry.emulator.drive.query import compile_query
from driveferry.emulator.drive.records import EXPORTS, permission_id
from driveferry.emulator.drive.uploads import UploadSessions
from driveferry.emulator.http import Handler, Request, Response, Router

if TYPE_CHECKING:
    from driveferry.emulator.server import Emulator

MAX_PAGE_SIZE = 1000  # "values above 1000 will be coerced to 1000" [DISC]
DEFAULT_PAGE_SIZE = 100
MAX_UPLOAD_SIZE = "5497558138880"  # mediaUpload.maxSize [DISC]
_ID = r"(?P<id>[^/]+)"


def _guard(fn: Handler) -> Handler:
    """Turn DriveErrors into wire errors, so handlers raise the model's errors unchanged."""
    @wraps(fn)
    def handler(req: Request) -> Response:
        try:
            return fn(req)
        except DriveError as exc:
            raise exc.wire() from None
    return handler


def _int_arg(req: Request, name: str, default: int) -> int:
    raw = req.arg(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid_value(name) from None


def _natural(text: str) -> list[Any]:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text.lower()) if t]


_ORDER_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "name": lambda r: r.get("name", ""),
    "name_natural": lambda r: _natural(r.get("name", "")),
    "modifiedTime": lambda r: r.get("modifiedTime", ""),
    "recency": lambda r: r.get("modifiedTime", ""),
    "modifiedByMeTime": lambda r: r.get("modifiedTime", ""),
    "createdTime": lambda r: r.get("createdTime", ""),
    "folder": lambda r: 0 if r.get("mimeType") == "application/vnd.google-apps.folder" else 1,
    "quotaBytesUsed": lambda r: int(r.get("quotaBytesUsed", "0")),
    "starred": lambda r: 0 if r.get("starred") else 1,
    "viewedByMeTime": lambda r: "",
    "sharedWithMeTime": lambda r: "",
}


def order(resources: list[dict[str, Any]], order_by: str | None) -> list[dict[str, Any]]:
    """Sort by an `orderBy` list like "folder,modifiedTime desc,name"; 400 on an unknown key."""
    if not order_by or not order_by.strip():
        return resources
    keys = []
    for part in order_by.split(","):
        words = part.split()
        if not words or words[0] not in _ORDER_KEYS or len(words) > 2 or \
                (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise invalid_value("orderBy", f"Invalid sort order: {part.strip()}")
        keys.append((_ORDER_KEYS[words[0]], len(words) == 2 and words[1].lower() == "desc"))
    out = list(resources)
    for key, desc in reversed(keys):  # stable sorts, least significant key first
        out.sort(key=key, reverse=desc)
    return out


def drive_model(emulator: Emulator) -> DriveModel:
    """The Drive model of a constructed emulator (for seeding and tests); LookupError if Drive isn't served."""
    for module in emulator.modules:
        if isinstance(module, DriveApi) and module.model is not None:
            return module.model
    raise LookupError("this emulator does not serve Google Drive")


class DriveApi:
    """The Drive v3 module of the emulator (see server.ApiModule)."""

    audience = "google"
    route_prefix = "drive."

    def __init__(self) -> None:
        self.model: DriveModel | None = None
        self.sessions: UploadSessions | None = None
        self._emu: Emulator | None = None

    def credentials(self, base_url: str) -> dict[str, Any]:
        scale = self._emu.realism.time_scale() if self._emu is not None else {}  # the client divides waits by it
        return {"drive": {"root_url": base_url + "/", "api_root": base_url + "/drive/v3/", **scale}}

    def register(self, router: Router, emulator: Emulator) -> None:
        self._emu = emulator
        model = self.model = DriveModel(emulator.state)
        sessions = self.sessions = UploadSessions(model)
        media = MediaHandlers(model, sessions, self._user)
        emulator.add_prefix_errors("/drive/", drive_errors)
        emulator.add_prefix_errors("/upload/drive/", drive_errors)
        emulator.add_prefix_errors("/_emulator/drive/", drive_errors)

        def add(name: str, method: str, pattern: str, fn: Handler, auth: bool = True,
                query: dict[str, str | None] | None = None) -> None:
            router.add(name, method, pattern, _guard(fn), drive_errors, auth=auth, query=query)

        v3, up = "/drive/v3", "/upload/drive/v3"
        add("drive.about", "GET", v3 + "/about", self.about)
        add("drive.files.generateIds", "GET", v3 + "/files/generateIds", self.generate_ids)
        add("drive.files.emptyTrash", "DELETE", v3 + "/files/trash", self.empty_trash)
        add("drive.files.list", "GET", v3 + "/files", self.list)
        add("drive.files.create", "POST", v3 + "/files", self.create)
        add("drive.files.copy", "POST", v3 + f"/files/{_ID}/copy", self.copy)
        add("drive.files.export", "GET", v3 + f"/files/{_ID}/export", media.export)
        add("drive.files.media", "GET", v3 + f"/files/{_ID}", media.download, query={"alt": "media"})
        add("drive.files.get", "GET", v3 + f"/files/{_ID}", self.get)
        add("drive.files.update", "PATCH", v3 + f"/files/{_ID}", self.update)
        add("drive.files.delete", "DELETE", v3 + f"/files/{_ID}", self.delete)
        DriveChanges(model).register(add, v3)  # drive.changes.startPageToken, drive.changes.list
        from driveferry.emulator.drive.revisions import register_revisions
        register_revisions(add, v3, model)  # drive.revisions.*
        from driveferry.emulator.drive.shareddrives import register_shared_drives
        register_shared_drives(add, v3, model)  # drive.drives.*
        from driveferry.emulator.drive.permissions import register_permissions
        self.permissions = register_permissions(add, v3, model)  # drive.permissions.*
        # The session URI is the credential: no Authorization needed (api-notes 4.6.2).
        for path in (up + "/files", up + f"/files/{_ID}"):
            # a request carrying upload_id is a chunk or a status query, never a new upload; Drive takes
            # both methods (rclone POSTs chunks to the session URI: rclone backend/drive/upload.go makeRequest)
            for method in ("PUT", "POST"):
                add("drive.upload.chunk", method, path, media.chunk, auth=False, query={"upload_id": None})
            add("drive.upload.cancel", "DELETE", path, media.cancel, auth=False, query={"upload_id": None})
            for method in ("POST", "PATCH", "PUT"):
                add("drive.upload.initiate", method, path, media.initiate, query={"uploadType": "resumable"})
            for method in ("POST", "PATCH", "PUT"):
                add("drive.upload.simple", method, path, media.simple)
        c = "/_emulator/drive"
        add("control.drive.corrupt", "POST", c + "/corrupt", self.control_corrupt, auth=False)
        add("control.drive.limits", "PUT", c + "/limits", self.control_limits, auth=False)
        add("control.drive.limits.get", "GET", c + "/limits", self.control_limits, auth=False)
        add("control.drive.usage", "GET", c + "/usage", self.control_usage, auth=False)

    @property
    def m(self) -> DriveModel:
        assert self.model is not None, "DriveApi.register() has not run"
        return self.model

    def _user(self, req: Request) -> str:
        """The bearer token's subject (set by Emulator.authorized on authenticated routes)."""
        return req.user or "anonymous"

    # --- files -------------------------------------------------------------------------------------------

    def get(self, req: Request) -> Response:
        mask = fields.file_mask(req.arg("fields"))
        f = self.m.get(req.params["id"], all_drives=req.flag("supportsAllDrives"))
        return Response.json(fields.apply(self.m.resource(f), mask))

    def list(self, req: Request) -> Response:
        mask = fields.list_mask(req.arg("fields"))
        size = min(MAX_PAGE_SIZE, max(1, _int_arg(req, "pageSize", DEFAULT_PAGE_SIZE)))
        q = (req.arg("q") or "").strip()
        compiled = compile_query(q, self.m.resolve) if q else None
        corpora, drive_id = req.arg("corpora") or "user", req.arg("driveId")
        if (corpora == "drive" and not drive_id) or (drive_id and req.arg("corpora") not in (None, "drive")):
            raise bad_request("The driveId parameter must be specified if and only if corpora is set to drive.",
                              "driveId")
        everywhere = req.flag("includeItemsFromAllDrives") or corpora == "allDrives"
        files = (self.m.children(compiled.parent_hint) if compiled and compiled.parent_hint
                 else self.m.all_files())
        memo: dict[str, bool] = {}
        rows = []
        for f in files:
            if f.id == self.m.root_id or f.id == f.drive_id:  # drive roots are never listed
                continue
            if (drive_id and f.drive_id != drive_id) or (not drive_id and not everywhere and f.drive_id):
                continue
            r = self.m.resource(f, memo)
            if compiled is None or compiled.predicate(r):
                rows.append(r)
        rows = order(rows, req.arg("orderBy"))
        scope = hashlib.sha1(json.dumps([q, req.arg("orderBy"), corpora, drive_id, everywhere]).encode()
                             ).hexdigest()[:12]
        start = self._page_start(req.arg("pageToken"), scope)
        body: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False,
                                "files": rows[start:start + size]}
        if start + size < len(rows):  # absent on the last page [DISC]
            token = json.dumps({"o": start + size, "s": scope}).encode()
            body["nextPageToken"] = base64.urlsafe_b64encode(token).decode().rstrip("=")
        return Response.json(fields.apply(body, mask))

    @staticmethod
    def _page_start(token: str | None, scope: str) -> int:
        if not token:
            return 0
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            if data["s"] != scope:
                raise ValueError("token from another query")
            return max(0, int(data["o"]))
        except (ValueError, KeyError, TypeError):
            raise invalid_value("pageToken") from None

    def create(self, req: Request) -> Response:
        """Metadata-only create (folders, shortcuts, empty files, native docs)."""
        mask = fields.file_mask(req.arg("fields"))
        meta = json_body(req)
        content = None
        if meta.get("mimeType") in EXPORTS:  # an empty native document exports as empty text
            content = write_blob(self.m.state.new_blob_path(), [])
        f = self.m.insert(meta, content, self._user(req), all_drives=req.flag("supportsAllDrives"))
        return Response.json(fields.apply(self.m.resource(f), mask))

    def copy(self, req: Request) -> Response:
        mask = fields.file_mask(req.arg("fields"))
        f = self.m.copy(req.params["id"], json_body(req), self._user(req), all_drives=req.flag("supportsAllDrives"))
        return Response.json(fields.apply(self.m.resource(f), mask))

    def update(self, req: Request) -> Response:
        mask = fields.file_mask(req.arg("fields"))
        f = self.m.update(req.params["id"], json_body(req), add_parents=req.arg("addParents", "") or "",
                          remove_parents=req.arg("removeParents", "") or "",
                          all_drives=req.flag("supportsAllDrives"))
        return Response.json(fields.apply(self.m.resource(f), mask))

    def delete(self, req: Request) -> Response:
        self.m.delete(req.params["id"], all_drives=req.flag("supportsAllDrives"))
        return Response.empty(204)

    def empty_trash(self, req: Request) -> Response:
        for f in [f for f in self.m.all_files() if f.trashed]:
            if self.m.find(f.id) is not None:
                self.m.delete(f.id)
        return Response.empty(204)

    def generate_ids(self, req: Request) -> Response:
        mask = fields.ids_mask(req.arg("fields"))
        count = _int_arg(req, "count", 10)
        if not 1 <= count <= 1000:
            raise invalid_value("count")
        body = {"kind": "drive#generatedIds", "space": req.arg("space") or "drive",
                "ids": self.m.generate_ids(count)}
        return Response.json(fields.apply(body, mask))

    def about(self, req: Request) -> Response:
        text = req.arg("fields")
        if not text or not text.strip():
            raise DriveError(400, "required", "The 'fields' parameter is required for this method.",
                             location="fields")
        mask = fields.about_mask(text)
        user = self._user(req)
        used, trash = self.m.quotas.storage_used()
        quota: dict[str, str] = {"usage": str(used), "usageInDrive": str(used), "usageInDriveTrash": str(trash)}
        limit = self.m.limits()["storage_limit_bytes"]
        if limit is not None:  # `limit` is absent when storage is unlimited [DISC]
            quota["limit"] = str(limit)
        body = {"kind": "drive#about", "storageQuota": quota, "maxUploadSize": MAX_UPLOAD_SIZE,
                "appInstalled": False, "canCreateDrives": True, "importFormats": {},
                "exportFormats": {k: list(v) for k, v in EXPORTS.items()},
                "user": {"kind": "drive#user", "displayName": user.split("@")[0], "emailAddress": user,
                         "me": True, "permissionId": permission_id(user)}}
        return Response.json(fields.apply(body, mask))

    # --- control (/_emulator/drive/...) ------------------------------------------------------------------

    def control_corrupt(self, req: Request) -> Response:
        body = json_body(req)
        fid, offset = body.get("file_id"), body.get("offset", 0)
        if not isinstance(fid, str) or not isinstance(offset, int) or isinstance(offset, bool):
            raise bad_request("Expected {\"file_id\": str, \"offset\": int}.")
        self.m.corrupt(fid, offset)
        return Response.json({"file_id": fid, "offset": offset, "corrupted": True})

    def control_limits(self, req: Request) -> Response:
        if req.method == "PUT":
            body = json_body(req)
            for key in ("daily_upload_bytes", "storage_limit_bytes"):
                value = body.get(key)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                    raise bad_request(f"{key} must be a non-negative integer or null.", key)
            self.m.set_limits(body.get("daily_upload_bytes"), body.get("storage_limit_bytes"),
                              clear_storage_limit="storage_limit_bytes" in body and body["storage_limit_bytes"] is None)
        return Response.json(self.m.limits())

    def control_usage(self, req: Request) -> Response:
        user = req.arg("user")
        users = self.m.quotas.usage_by_user()
        used, trash = self.m.quotas.storage_used()
        return Response.json({"window_s": 86400, "uploaded_bytes": users.get(user, 0) if user else sum(users.values()),
                              "users": users, "storage_used_bytes": used, "storage_trash_bytes": trash,
                              **self.m.limits()})
