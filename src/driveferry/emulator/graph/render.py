"""driveItem and drive JSON as Business sends them (api-notes 8.1), and pre-authenticated download URLs.

Download URLs are `{base}/_graphdl/{token}`: the token is HMAC-signed (secret kept in emu_meta) over the
item id and an expiry one hour ahead on the emulator clock, so they need no Authorization header,
survive a restart, and expire like real ones ("valid for 1 hour", driveItem doc).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import quote

from driveferry.emulator.graph.models import GraphModel, Item

DOWNLOAD_LIFETIME_S = 3600
USER = {"displayName": "Alex Wilber", "email": "alex@contoso.onmicrosoft.com"}
DOWNLOAD_URL = "@microsoft.graph.downloadUrl"


class DownloadTokens:
    """Sign and check download-URL tokens."""

    def __init__(self, model: GraphModel) -> None:
        self.model = model
        secret = model.state.get_meta("graph.download_secret", "")
        if not secret:
            secret = secrets.token_hex(32)
            model.state.set_meta("graph.download_secret", secret)
        self._key = bytes.fromhex(secret)

    def _sig(self, payload: str) -> str:
        mac = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(mac).decode()

    def issue(self, item_id: str) -> str:
        expires = int(self.model.state.clock.timestamp()) + DOWNLOAD_LIFETIME_S
        payload = f"{item_id}.{expires}"
        return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=") + "." + self._sig(payload)

    def check(self, token: str) -> str | None:
        """The item id of a valid, unexpired token, else None."""
        enc, _, sig = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(enc + "=" * (-len(enc) % 4)).decode()
            item_id, expires = payload.rsplit(".", 1)
            exp = int(expires)
        except ValueError:
            return None
        if not hmac.compare_digest(sig, self._sig(payload)) or exp < self.model.state.clock.timestamp():
            return None
        return item_id


class Renderer:
    """Turns model items into Graph JSON for one request (caches parent paths per instance)."""

    def __init__(self, model: GraphModel, tokens: DownloadTokens, base_url: str) -> None:
        self.model = model
        self.tokens = tokens
        self.base_url = base_url
        self._paths: dict[str, str] = {}
        self._roots: dict[str, str] = {}  # parent id -> the drive root above it
        self._any_library: bool | None = None

    def _parent_path(self, parent_id: str) -> str:
        """"/a/b" of a folder, cached for the request (a page of children shares one parent)."""
        if parent_id not in self._paths:
            self._paths[parent_id] = self.model.path_of(self.model.get(parent_id))
        return self._paths[parent_id]

    def _drive_of(self, item: Item) -> tuple[str, str]:
        """(drive id, driveType) of the drive an item is in: a library's (graph/sites.py) or the user's."""
        if self._any_library is None:  # asked once per request: most drives share their table with none
            self._any_library = self.model.sites.any()
        if not self._any_library:
            return self.model.drive_id, "business"
        root = item.id if item.parent_id is None else self._roots.get(item.parent_id)
        if root is None:
            root = self._roots[item.parent_id or ""] = self.model.root_of(item.id)
        library = self.model.sites.library_of_root(root)
        return (library.drive_id, "documentLibrary") if library else (self.model.drive_id, "business")

    def download_url(self, item: Item) -> str:
        return f"{self.base_url}/_graphdl/{self.tokens.issue(item.id)}"

    def drive(self) -> dict[str, Any]:
        d = self.model.drive_id
        return {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#drives/$entity", "id": d,
                "driveType": "business", "name": "OneDrive", "createdDateTime": self.model.root().created,
                "webUrl": "https://contoso-my.sharepoint.com/personal/alex_contoso_onmicrosoft_com/Documents",
                "owner": {"user": USER}, "quota": self.model.quota()}

    def item(self, item: Item, delta: bool = False, select: set[str] | None = None) -> dict[str, Any]:
        """A driveItem. In delta, `parentReference.path` and `cTag` are omitted and deleted items carry
        only id, the `deleted` facet and parentReference, as Business sends them (api-notes 9.4)."""
        d, kind = self._drive_of(item)
        parent: dict[str, Any] = {"driveId": d, "driveType": kind}
        if item.parent_id is not None:
            parent["id"] = item.parent_id
            if not delta:
                parent["path"] = f"/drives/{d}/root:" + quote(self._parent_path(item.parent_id), safe="/!$&'()+,;=@")
        if item.deleted:
            return {"id": item.id, "deleted": {"state": "deleted"}, "parentReference": parent}
        out: dict[str, Any] = {
            "id": item.id, "name": item.name, "eTag": item.etag,
            "createdDateTime": item.created, "lastModifiedDateTime": item.modified,
            "size": self.model.folder_size(item.id) if item.is_folder else item.size,
            "webUrl": "https://contoso-my.sharepoint.com/personal/alex/Documents" + quote(
                "" if item.parent_id is None else self._parent_path(item.parent_id) + "/" + item.name),
            "createdBy": {"user": USER}, "lastModifiedBy": {"user": USER},
            "parentReference": parent,
            "fileSystemInfo": {"createdDateTime": item.fs_created, "lastModifiedDateTime": item.fs_modified},
        }
        if item.kind == "root":
            out["root"] = {}
        if item.is_folder:
            out["folder"] = {"childCount": self.model.child_count(item.id)}
        elif item.kind == "package":
            out["package"] = {"type": item.package_type or "oneNote"}
        else:
            if not delta:
                out["cTag"] = item.ctag  # Business omits cTag on folders and in delta
            out["file"] = {"mimeType": item.mime or "application/octet-stream"}
            if item.qxh:  # quickXorHash only, as on Business; none for zero-byte files (or after drop_hash)
                out["file"]["hashes"] = {"quickXorHash": item.qxh}
            out[DOWNLOAD_URL] = self.download_url(item)
        if select is not None:
            want = set(select)
            if "content.downloadUrl" in want:
                want.add(DOWNLOAD_URL)  # SharePoint emits the annotation for this select (api-notes 9.3)
            out = {k: v for k, v in out.items() if k in want}
        return out
