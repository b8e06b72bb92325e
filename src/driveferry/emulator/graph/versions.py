"""File versions on OneDrive for Business / SharePoint: the content a file held before each replace.

What Graph serves (learn.microsoft.com/en-us/graph/api/driveitem-list-versions, driveitemversion-get,
driveitemversion-get-contents; resources/driveitemversion):

    GET .../items/{id}/versions                   driveItemVersion collection, the current version first
    GET .../items/{id}/versions/{version-id}      one driveItemVersion
    GET .../items/{id}/versions/{version-id}/content
                                                  302 to a pre-authenticated download URL, like an item's

A driveItemVersion carries `id`, `lastModifiedDateTime`, `lastModifiedBy` and `size`, and no hashes:
a client cannot check a version's bytes against the source, only against what it streamed. Business
numbers versions "1.0", "2.0", ... (major versions of the library), the current one the highest; the
current version's content is the item's. A library keeps a bounded number of major versions
(SharePoint's default limit is 500: "Versioning settings" of a document library), the oldest dropped
first. Folders and packages have no versions (404 itemNotFound, as an item that does not exist).

Every replace of a file's content (an upload, a simple PUT, the model's `create_file` with conflict
replace, which is also how a seed gives a file several versions) keeps the replaced content here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from driveferry.emulator.graph.errors import ItemNotFound, Unauthenticated
from driveferry.emulator.graph.items import Item
from driveferry.emulator.http import Request, Response, Router
from driveferry.emulator.state import State

if TYPE_CHECKING:
    from driveferry.emulator.graph.routes import GraphApi

MAX_VERSIONS = 500  # major versions a library keeps by default (SharePoint versioning settings)
USER = {"displayName": "Alex Wilber", "email": "alex@contoso.onmicrosoft.com"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS graph_versions (
    item_id TEXT NOT NULL, n INTEGER NOT NULL, size INTEGER NOT NULL, blob TEXT, modified TEXT NOT NULL,
    PRIMARY KEY (item_id, n)
);
"""


@dataclass(frozen=True)
class StoredVersion:
    """A previous version: number `n` (its id is "n.0"), its size, content blob and time."""

    item_id: str
    n: int
    size: int
    blob: str | None
    modified: str

    @property
    def version_id(self) -> str:
        return f"{self.n}.0"


class VersionStore:
    """Previous versions of files, kept in the shared database (`graph_versions`). Thread-safe."""

    def __init__(self, state: State) -> None:
        self.state = state
        with state.lock:
            state.db.executescript(_SCHEMA)

    def retire(self, item: Item) -> None:
        """Keep `item`'s current content (about to be replaced) as its newest previous version; the
        oldest beyond MAX_VERSIONS go, with their blobs."""
        with self.state.tx() as db:
            row = db.execute("SELECT COALESCE(MAX(n), 0) AS n FROM graph_versions WHERE item_id=?",
                             (item.id,)).fetchone()
            db.execute("INSERT INTO graph_versions(item_id, n, size, blob, modified) VALUES(?,?,?,?,?)",
                       (item.id, int(row["n"]) + 1, item.size, item.blob, item.modified))
            doomed = db.execute("SELECT blob FROM graph_versions WHERE item_id=? ORDER BY n DESC LIMIT -1 OFFSET ?",
                                (item.id, MAX_VERSIONS)).fetchall()
            db.execute("DELETE FROM graph_versions WHERE item_id=? AND n NOT IN (SELECT n FROM graph_versions"
                       " WHERE item_id=? ORDER BY n DESC LIMIT ?)", (item.id, item.id, MAX_VERSIONS))
        for r in doomed:
            self.state.remove_blob(r["blob"])

    def previous(self, item_id: str) -> list[StoredVersion]:
        """The item's previous versions, newest first."""
        rows = self.state.query("SELECT * FROM graph_versions WHERE item_id=? ORDER BY n DESC", (item_id,))
        return [StoredVersion(str(r["item_id"]), int(r["n"]), int(r["size"]), r["blob"], str(r["modified"]))
                for r in rows]

    def drop(self, item_ids: list[str]) -> None:
        """Forget the versions of deleted items and free their blobs."""
        if not item_ids:
            return
        marks = ",".join("?" * len(item_ids))
        rows = self.state.query(f"SELECT blob FROM graph_versions WHERE item_id IN ({marks})", item_ids)
        with self.state.tx() as db:
            db.execute(f"DELETE FROM graph_versions WHERE item_id IN ({marks})", item_ids)
        for r in rows:
            self.state.remove_blob(r["blob"])


# --- HTTP ----------------------------------------------------------------------------------------------

_DRIVE = r"/v1\.0/(?:me/drive|drives/(?P<drive>[^/]+))"
_ITEM = _DRIVE + r"(?:/root|/items/(?P<item>[^/:]+))(?::(?P<path>[^:]*):)?/versions"
_VERSION = re.compile(r"(\d+)\.0\Z")


def _resource(version_id: str, size: int, modified: str) -> dict[str, Any]:
    return {"id": version_id, "lastModifiedDateTime": modified, "size": size,
            "lastModifiedBy": {"user": USER}}


class VersionRoutes:
    """The versions endpoints, served over the Graph module's model and download tokens."""

    def __init__(self, api: GraphApi) -> None:
        self.api = api

    def _file(self, req: Request) -> Item:
        item = self.api._item(req)  # the module's own addressing (drive check, base item, path)
        if item.kind != "file":
            raise ItemNotFound("The item has no versions.")
        return item

    def _all(self, item: Item) -> list[dict[str, Any]]:
        """The current version first, then the previous ones newest first, as Graph lists them."""
        previous = self.api.model.versions.previous(item.id)
        current = (previous[0].n if previous else 0) + 1
        out = [_resource(f"{current}.0", item.size, item.modified)]
        out += [_resource(v.version_id, v.size, v.modified) for v in previous]
        return out

    def list(self, req: Request) -> Response:
        return Response.json({"value": self._all(self._file(req))})

    def _find(self, req: Request) -> tuple[Item, StoredVersion | None]:
        """(file, stored previous version, or None for the current version); 404 for another id."""
        item = self._file(req)
        wanted = req.params["version"]
        previous = self.api.model.versions.previous(item.id)
        current = (previous[0].n if previous else 0) + 1
        if wanted in (f"{current}.0", "current"):
            return item, None
        m = _VERSION.fullmatch(wanted)
        found = next((v for v in previous if m and v.n == int(m.group(1))), None)
        if found is None:
            raise ItemNotFound(f"Version {wanted!r} was not found.")
        return item, found

    def get(self, req: Request) -> Response:
        item, version = self._find(req)
        if version is None:
            return Response.json(self._all(item)[0])
        return Response.json(_resource(version.version_id, version.size, version.modified))

    def content(self, req: Request) -> Response:
        item, version = self._find(req)
        renderer = self.api._renderer(req)
        if version is None:
            return Response.empty(302, [("Location", renderer.download_url(item))])
        token = self.api.tokens.issue(f"{item.id}~{version.n}")
        return Response.empty(302, [("Location", f"{req.base_url}/_graphdlv/{token}")])

    def download(self, req: Request) -> Response:
        """A previous version's bytes through its pre-authenticated URL (whole, or one Range)."""
        signed = self.api.tokens.check(req.params["token"]) or ""
        item_id, _, n = signed.partition("~")
        found = next((v for v in self.api.model.versions.previous(item_id) if n.isdigit() and v.n == int(n)), None)
        if found is None:
            raise Unauthenticated("The download URL has expired or is not valid.", "expiredToken")
        from driveferry.emulator.server import iter_file
        start, end, status = 0, found.size, 200
        headers = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes")]
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", (req.headers.get("range") or "").strip())
        if m and found.size:
            start = int(m.group(1))
            end = min(found.size, int(m.group(2)) + 1) if m.group(2) else found.size
            if start >= end:
                return Response.json({"error": {"code": "invalidRange", "message": "The requested range is not"
                                                " satisfiable."}}, 416, [("Content-Range", f"bytes */{found.size}")])
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{found.size}"))
        if not found.blob or found.size == 0:
            return Response(status, headers, iter(()), length=0, download=True)
        path = self.api.model.state.blob_path(found.blob)
        return Response(status, headers, iter_file(path, start, end), length=end - start, download=True)


def register_versions(router: Router, api: GraphApi, add: Any) -> None:
    """Add the versions routes through the module's `add(name, method, pattern, fn, auth=...)`."""
    routes = VersionRoutes(api)
    add("graph.versions", "GET", _ITEM + "/?", routes.list)
    add("graph.version", "GET", _ITEM + r"/(?P<version>[^/]+)", routes.get)
    add("graph.version.content", "GET", _ITEM + r"/(?P<version>[^/]+)/content", routes.content)
    add("graph.version.download", "GET", r"/_graphdlv/(?P<token>[^/]+)", routes.download, auth=False)
