"""OneDrive for Business (Microsoft Graph v1.0) as a driveferry Provider.

Normalisation at the edge (design habit 4): sizes are ints (None for folders, whose Graph `size` is the
total of their descendants), `modified` is fileSystemInfo.lastModifiedDateTime in UTC (the client-side
time that survives uploads), hashes are {QUICKXOR: lowercase hex} (Graph sends none for zero-byte files,
so we supply the constant; none while Graph has not computed one yet), names are decoded (names.py),
paths are relative to the configured root folder. OneNote notebooks (`package` facet) are reported as Kind.PACKAGE, never dropped.

Addressing: a delegated sign-in uses /me/drive; app-only tokens cannot, so `drive_id` (/drives/{id}) or
`user` (/users/{upn}/drive) is required with client credentials.
"""

from __future__ import annotations

import builtins
import posixpath
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from driveferry.errors import AlreadyExistsError, NotFoundError, UnsupportedError, UserError
from driveferry.integrity.hashes import HashType, from_wire
from driveferry.providers.base import Entry, Features, Kind, UploadMeta
from driveferry.providers.onedrive import names
from driveferry.providers.onedrive.api import GRAPH_ROOT, ITEM_FIELDS, GraphClient, PageCall
from driveferry.providers.onedrive.auth import MsalTokens, TokenSource, token_source
from driveferry.providers.onedrive.permissions import GraphSharing
from driveferry.providers.onedrive.prefetch import DownloadPrefetch
from driveferry.providers.onedrive.sites import library_drive_id
from driveferry.providers.onedrive.upload import (
    CHUNK_MULTIPLE,
    MAX_CHUNK,
    GraphUploadSession,
    UploadToken,
    create_session,
    graph_time,
)
from driveferry.providers.onedrive.versions import GraphVersions

EMPTY_QUICKXOR = "00" * 20  # quickXorHash of zero bytes (api-notes 14.2: AAAAAAAAAAAAAAAAAAAAAAAAAAA=)


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


class OneDriveProvider:
    """A OneDrive for Business drive (or a folder in it) through Graph. Thread-safe."""

    hash_types = frozenset({HashType.QUICKXOR})

    def __init__(self, client: GraphClient, *, root: str = "", name: str = "onedrive",
                 create_root: bool = False) -> None:
        """`root`: plain folder path in the drive that this provider treats as its root ("" = drive root);
        `create_root`: make that folder (and its parents) on first use if it is missing."""
        self.name = name
        self.client = client
        self.request_tally = client.tally  # every Graph request made (migrate's calls per file)
        self._root = root.strip("/")
        self._create_root = create_root
        self.features = Features(chunk_multiple=CHUNK_MULTIPLE, max_chunk=MAX_CHUNK, duplicate_names=False,
                                 mod_time=self, delta=self, case_insensitive=True,
                                 illegal_name_chars="/",  # everything else is mapped reversibly (names.py)
                                 max_path_chars=names.max_path_chars(self._root),
                                 rewrites_office_files=True, sharing=GraphSharing(client),
                                 versions=GraphVersions(client), prefetch=DownloadPrefetch(client))

    @property
    def page_call(self) -> PageCall:
        """How collection pages are fetched (the retry layer sets a retrying one; see api.py)."""
        return self.client.page_call

    @page_call.setter
    def page_call(self, call: PageCall) -> None:
        self.client.page_call = call

    # --- normalisation ------------------------------------------------------------------------------

    def _drive_path(self, path: str) -> str:
        """Encoded path relative to the drive root for a plain provider path."""
        return names.encode_path(_join(self._root, path.strip("/")))

    def entry(self, item: Mapping[str, Any], path: str) -> Entry:
        """An Entry for a driveItem at plain provider path `path`."""
        if "package" in item:
            kind = Kind.PACKAGE
        elif "folder" in item or "root" in item:
            kind = Kind.FOLDER
        else:
            kind = Kind.FILE
        file = item.get("file") or {}
        size = int(item["size"]) if kind is not Kind.FOLDER and item.get("size") is not None else None
        hashes: dict[HashType, str] = {}
        qxh = (file.get("hashes") or {}).get("quickXorHash")
        if kind is Kind.FILE and size == 0:
            hashes[HashType.QUICKXOR] = EMPTY_QUICKXOR  # Graph omits it; no bytes have one known hash
        elif kind is Kind.FILE and qxh:
            hashes[HashType.QUICKXOR] = from_wire(HashType.QUICKXOR, str(qxh))
        props: dict[str, str] = {}
        if kind is Kind.PACKAGE:
            props["package_type"] = str((item.get("package") or {}).get("type", ""))
        if "deleted" in item:
            props["deleted"] = "true"
        fsi = item.get("fileSystemInfo") or {}
        return Entry(id=str(item["id"]), path=path, name=posixpath.basename(path), kind=kind, size=size,
                     modified=parse_time(fsi.get("lastModifiedDateTime") or item.get("lastModifiedDateTime")),
                     mime_type=file.get("mimeType"), hashes=hashes, properties=props,
                     parent_id=(item.get("parentReference") or {}).get("id"),
                     created=parse_time(fsi.get("createdDateTime") or item.get("createdDateTime")))

    # --- the core -----------------------------------------------------------------------------------

    def root(self) -> Entry:
        try:
            return self.stat("")
        except NotFoundError:
            if not (self._create_root and self._root):
                raise
        parent_id = str(self.client.get_json(self.client.item_url(""))["id"])
        done: builtins.list[str] = []
        for segment in names.encode_path(self._root).split("/"):
            done.append(segment)
            body = {"name": segment, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}
            try:
                parent_id = str(self.client.request("POST", self.client.id_url(parent_id) + "/children",
                                                    json=body, ok=(200, 201)).json()["id"])
            except AlreadyExistsError:  # made meanwhile (another worker): use it
                parent_id = str(self.client.get_json(self.client.item_url("/".join(done)))["id"])
        return self.stat("")

    def stat(self, path: str) -> Entry:
        path = path.strip("/")
        item = self.client.get_json(self.client.item_url(self._drive_path(path)), {"$select": ITEM_FIELDS})
        # Keep the caller's folder part but the server's spelling of the name (case-insensitive drive).
        name = names.decode(str(item.get("name", ""))) if path else ""
        return self.entry(item, _join(posixpath.dirname(path), name) if path else "")

    def find(self, path: str) -> Entry | None:
        try:
            return self.stat(path)
        except NotFoundError:
            return None

    def list(self, folder: Entry) -> Iterator[Entry]:
        for item in self.client.children(folder.id):
            yield self.entry(item, _join(folder.path, names.decode(str(item.get("name", "")))))

    def open_range(self, entry: Entry, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if entry.kind is not Kind.FILE:
            raise UnsupportedError(f"{entry.path}: a OneDrive {entry.kind.value} has no bytes to download",
                                   code=entry.kind.value)
        if entry.size is not None:
            end = entry.size if end is None else min(end, entry.size)
        if end is not None and start >= end:
            return iter(())
        return self.client.download(entry.id, start, end)

    def begin_upload(self, parent: Entry, name: str, size: int, meta: UploadMeta) -> GraphUploadSession:
        path = _join(parent.path, name)
        token = create_session(self.client, parent.id, names.encode(name), path, size,
                               replace=meta.replace, modified=meta.modified, created=meta.created)
        return GraphUploadSession(self.client, token, self.entry, self.find)

    def resume_upload(self, token: str) -> GraphUploadSession:
        return GraphUploadSession(self.client, UploadToken.loads(token), self.entry, self.find)

    def mkdir(self, parent: Entry, name: str) -> Entry:
        body = {"name": names.encode(name), "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}
        path = _join(parent.path, name)
        try:
            item = self.client.request("POST", self.client.id_url(parent.id) + "/children", json=body,
                                       ok=(200, 201), what=f"create folder {path}").json()
        except AlreadyExistsError:
            existing = self.stat(path)  # also covers a retry whose first attempt had succeeded
            if existing.kind is not Kind.FOLDER:
                raise
            return existing
        return self.entry(item, path)

    def delete(self, entry: Entry) -> None:
        self.client.request("DELETE", self.client.id_url(entry.id), ok=(200, 204), what=f"delete {entry.path}")

    # --- optional capabilities ----------------------------------------------------------------------

    def set_modified(self, entry: Entry, modified: datetime) -> Entry:
        """ModTimeSetter: PATCH fileSystemInfo.lastModifiedDateTime (the time OneDrive shows)."""
        body = {"fileSystemInfo": {"lastModifiedDateTime": graph_time(modified)}}
        item = self.client.request("PATCH", self.client.id_url(entry.id), json=body,
                                   what=f"set time of {entry.path}").json()
        return self.entry(item, entry.path)

    def delta(self, cursor: str | None) -> tuple[builtins.list[Entry], str]:
        """DeltaLister: changes under the root since `cursor` (None: everything), latest state per item.

        Delta runs from the drive root (efficient on Business only there) and omits parent paths, so paths
        come from the parents seen in the same answer, else one lookup per unknown parent. Deleted items
        carry properties["deleted"] == "true" and path "" when Graph no longer names them.
        """
        items, link = self.client.delta(cursor)
        latest = {str(i["id"]): i for i in items if "id" in i}  # the last occurrence wins
        paths: dict[str, str | None] = {}
        prefix = names.encode_path(self._root)
        out: builtins.list[Entry] = []
        for item in latest.values():
            drive_path = self._delta_path(item, latest, paths)
            if drive_path is None and "deleted" in item:
                out.append(self.entry(item, ""))
                continue
            if drive_path is None or drive_path == prefix or (prefix and not drive_path.startswith(prefix + "/")):
                continue  # the root itself, or outside our root folder
            rel = drive_path[len(prefix) + 1:] if prefix else drive_path
            out.append(self.entry(item, names.decode_path(rel)))
        return out, link

    def latest_cursor(self) -> str:
        """DeltaLister: a cursor for changes from now on, without enumerating anything."""
        return self.client.delta_latest()

    def _delta_path(self, item: Mapping[str, Any], latest: Mapping[str, Mapping[str, Any]],
                    paths: dict[str, str | None]) -> str | None:
        """The encoded drive path of a delta item, or None when it cannot be known (deleted, orphan)."""
        item_id = str(item["id"])
        if item_id in paths:
            return paths[item_id]
        paths[item_id] = None  # guards against parent cycles in malformed answers
        result: str | None = None
        parent = item.get("parentReference") or {}
        if "root" in item:
            result = ""
        elif item.get("name") is not None and "deleted" not in item:
            if isinstance(parent.get("path"), str) and "root:" in parent["path"]:
                base: str | None = unquote(parent["path"].split("root:", 1)[1]).strip("/")
            elif parent.get("id") in latest:
                base = self._delta_path(latest[parent["id"]], latest, paths)
            elif parent.get("id"):
                base = self._lookup_path(str(parent["id"]), paths)
            else:
                base = None
            result = None if base is None else _join(base, str(item["name"]))
        paths[item_id] = result
        return result

    def _lookup_path(self, item_id: str, paths: dict[str, str | None]) -> str | None:
        if item_id not in paths:
            try:
                item = self.client.get_json(self.client.id_url(item_id), {"$select": "id,name,root,parentReference"})
            except NotFoundError:
                paths[item_id] = None
                return None
            parent = (item.get("parentReference") or {}).get("path")
            if "root" in item:
                paths[item_id] = ""
            elif isinstance(parent, str) and "root:" in parent:
                paths[item_id] = _join(unquote(parent.split("root:", 1)[1]).strip("/"), str(item["name"]))
            else:
                paths[item_id] = None
        return paths[item_id]


def from_remote_config(section: Mapping[str, Any], *, name: str, state_dir: Path) -> OneDriveProvider:
    """Build the provider from a `[remotes.NAME]` section (keys in the module docs of auth.py and here).

    Drive keys: `drive_id` or `user` (UPN; app-only sign-in needs one of them), or `site` and `library`
    (a SharePoint document library by name: sites.py), `root` (folder path),
    `create_root` (make `root` if missing),
    `api_root` (default: `endpoint` + "/v1.0" when `endpoint` is set, else Graph), `ca_file`.
    Retry keys are read where providers are built (registry.retry_policy).
    """
    tokens: TokenSource = token_source(section, name=name, state_dir=Path(state_dir))
    drive_id, user = section.get("drive_id"), section.get("user")
    site, library = section.get("site"), section.get("library")
    if (site or library) and (drive_id or user):
        raise UserError(f"remote {name!r}: set site and library, or drive_id, or user; not several")
    if bool(site) != bool(library):
        raise UserError(f"remote {name!r}: a SharePoint library needs both site (\"<tenant>.sharepoint.com:/sites/"
                        "<name>\") and library (its name, such as \"Documents\")")
    if drive_id or site:  # a library: its drive, found once here
        base = ""
        base = f"/drives/{quote(str(drive_id), safe='!')}"
    elif user:
        base = f"/users/{quote(str(user), safe='@')}/drive"
    elif isinstance(tokens, MsalTokens) and not tokens.settings.device_code:
        raise UserError(f"remote {name!r}: app-only sign-in cannot use /me; set `drive_id` or `user`")
    else:
        base = "/me/drive"
    endpoint = section.get("endpoint")
    api_root = str(section.get("api_root") or (f"{str(endpoint).rstrip('/')}/v1.0" if endpoint else GRAPH_ROOT))
    ca = section.get("ca_file")
    client = GraphClient(api_root, base, tokens, ca_file=str(ca) if ca else None,
                         login_hint=f"run `driveferry auth login {name}`")
    if drive_id or site:
        found = drive_id or library_drive_id(client, str(site), str(library), name)
        client.drive_base = f"/drives/{quote(str(found), safe='!')}"
    create = str(section.get("create_root", "false")).lower() in ("1", "true", "yes")
    return OneDriveProvider(client, root=str(section.get("root") or ""), name=name, create_root=create)
