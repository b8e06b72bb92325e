"""SharePoint sites and their document libraries, each library a drive of its own.

What Graph serves (learn.microsoft.com/en-us/graph/api/site-getbypath, site-get, drive-list,
drive-get; resources/site, resources/drive):

    GET /v1.0/sites/{hostname}:/sites/{path}     a site by its server-relative path (also /teams/...)
    GET /v1.0/sites/{site-id}                    a site by id ("{hostname},{site guid},{web guid}")
    GET /v1.0/sites/{site-id}/drives             its document libraries, each a drive
    GET /v1.0/sites/{site-id}/drive              its default library ("Documents", shown as "Shared Documents")

A library's drive has `driveType` "documentLibrary" and is addressed like any drive, `/drives/{id}/root`,
`/drives/{id}/items/{item-id}` and so on; its items' `parentReference.driveId` is the library's id. An
unknown site is 404 itemNotFound ("Requested site could not be found").

In the emulator a library's items live in the same item table as the signed-in user's OneDrive, under a
root item of their own (parent NULL), so every item rule (names, conflicts, uploads, versions, delta,
SharePoint's rewrite of Office files) is the same code on both. Its quota is the user's.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from driveferry.emulator.graph.errors import ItemNotFound
from driveferry.emulator.graph.items import iso, new_item_id
from driveferry.emulator.http import Request, Response, Router
from driveferry.emulator.state import State

if TYPE_CHECKING:
    from driveferry.emulator.graph.routes import GraphApi

_SCHEMA = """
CREATE TABLE IF NOT EXISTS graph_sites (
    site_id TEXT PRIMARY KEY, hostname TEXT NOT NULL, path TEXT NOT NULL, name TEXT NOT NULL, created TEXT NOT NULL,
    UNIQUE (hostname, path)
);
CREATE TABLE IF NOT EXISTS graph_libraries (
    drive_id TEXT PRIMARY KEY, site_id TEXT NOT NULL, name TEXT NOT NULL, root_id TEXT NOT NULL,
    created TEXT NOT NULL, UNIQUE (site_id, name)
);
"""


@dataclass(frozen=True)
class Site:
    site_id: str
    hostname: str
    path: str  # server-relative: "sites/Team"
    name: str
    created: str


@dataclass(frozen=True)
class Library:
    drive_id: str
    site_id: str
    name: str
    root_id: str
    created: str


class SiteStore:
    """Sites and libraries, in the shared database. Python API for seeds and tests:

        site = sites.add_site("contoso.sharepoint.com", "sites/Team", "Team")
        lib = sites.add_library(site.site_id, "Documents")     # lib.drive_id, lib.root_id
    """

    def __init__(self, state: State) -> None:
        self.state = state
        with state.lock:
            state.db.executescript(_SCHEMA)

    def add_site(self, hostname: str, path: str, name: str | None = None) -> Site:
        """A site (returned as it is when one already has this hostname and path)."""
        path = path.strip("/")
        found = self.site_by_path(hostname, path)
        if found is not None:
            return found
        site_id = f"{hostname},{uuid.uuid4()},{uuid.uuid4()}"
        with self.state.tx() as db:
            db.execute("INSERT INTO graph_sites VALUES(?,?,?,?,?)",
                       (site_id, hostname, path, name or path.rpartition("/")[2], iso(self.state.clock.now())))
        return self.site(site_id)

    def add_library(self, site_id: str, name: str) -> Library:
        """A document library of the site: a drive with a root of its own (returned as it is if present)."""
        site = self.site(site_id)
        for lib in self.libraries(site.site_id):
            if lib.name.lower() == name.lower():
                return lib
        drive_id = "b!" + base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("=")
        root_id, now = new_item_id(), iso(self.state.clock.now())
        with self.state.tx() as db:
            seq = int(db.execute("SELECT COALESCE(MAX(seq),0) AS n FROM graph_items").fetchone()["n"]) + 1
            db.execute("INSERT INTO graph_items(id, parent_id, name, kind, created, modified, fs_created,"
                       " fs_modified, guid, seq) VALUES(?,?,?,?,?,?,?,?,?,?)",
                       (root_id, None, "root", "root", now, now, now, now, str(uuid.uuid4()).upper(), seq))
            db.execute("INSERT INTO graph_libraries VALUES(?,?,?,?,?)", (drive_id, site.site_id, name, root_id, now))
        return self.library(drive_id)  # type: ignore[return-value]

    def site(self, site_id: str) -> Site:
        rows = self.state.query("SELECT * FROM graph_sites WHERE site_id=?", (site_id,))
        if not rows:
            raise ItemNotFound("Requested site could not be found")
        return Site(**dict(rows[0]))

    def site_by_path(self, hostname: str, path: str) -> Site | None:
        rows = self.state.query("SELECT * FROM graph_sites WHERE hostname=? COLLATE NOCASE AND path=? COLLATE NOCASE",
                                (hostname, path.strip("/")))
        return Site(**dict(rows[0])) if rows else None

    def libraries(self, site_id: str) -> list[Library]:
        rows = self.state.query("SELECT * FROM graph_libraries WHERE site_id=? ORDER BY rowid", (site_id,))
        return [Library(**dict(r)) for r in rows]

    def library(self, drive_id: str) -> Library | None:
        rows = self.state.query("SELECT * FROM graph_libraries WHERE drive_id=?", (drive_id,))
        return Library(**dict(rows[0])) if rows else None

    def library_of_root(self, root_id: str) -> Library | None:
        rows = self.state.query("SELECT * FROM graph_libraries WHERE root_id=?", (root_id,))
        return Library(**dict(rows[0])) if rows else None

    def any(self) -> bool:
        return bool(self.state.query("SELECT 1 FROM graph_libraries LIMIT 1"))


def site_url(site: Site) -> str:
    return f"https://{site.hostname}/{quote(site.path)}"


def render_site(site: Site) -> dict[str, Any]:
    return {"id": site.site_id, "name": site.name, "displayName": site.name, "webUrl": site_url(site),
            "createdDateTime": site.created, "siteCollection": {"hostname": site.hostname}}


def render_library(lib: Library, site: Site, quota: dict[str, Any]) -> dict[str, Any]:
    """A library's drive resource: driveType documentLibrary, the library's name, the site's URL."""
    shown = "Shared Documents" if lib.name == "Documents" else lib.name  # the default library's URL name
    return {"id": lib.drive_id, "driveType": "documentLibrary", "name": lib.name, "createdDateTime": lib.created,
            "webUrl": f"{site_url(site)}/{quote(shown)}", "owner": {"group": {"displayName": site.name}},
            "quota": quota}


class SiteRoutes:
    def __init__(self, api: GraphApi) -> None:
        self.api = api

    @property
    def sites(self) -> SiteStore:
        return self.api.model.sites

    def by_path(self, req: Request) -> Response:
        site = self.sites.site_by_path(req.params["host"], req.params["spath"])
        if site is None:
            raise ItemNotFound("Requested site could not be found")
        return Response.json(render_site(site))

    def get(self, req: Request) -> Response:
        return Response.json(render_site(self.sites.site(req.params["site"])))

    def drives(self, req: Request) -> Response:
        site = self.sites.site(req.params["site"])
        quota = self.api.model.quota()
        return Response.json({"value": [render_library(lib, site, quota) for lib in self.sites.libraries(site.site_id)]})

    def default_drive(self, req: Request) -> Response:
        site = self.sites.site(req.params["site"])
        libs = self.sites.libraries(site.site_id)
        if not libs:
            raise ItemNotFound("The site has no document library.")
        return Response.json(render_library(libs[0], site, self.api.model.quota()))


def register_sites(router: Router, api: GraphApi, add: Any) -> None:
    """Add the sites routes through the Graph module's `add(name, method, pattern, fn)`."""
    routes = SiteRoutes(api)
    add("graph.site.bypath", "GET", r"/v1\.0/sites/(?P<host>[^/:,]+):/(?P<spath>(?:sites|teams)/[^:]+?):?/?",
        routes.by_path)
    add("graph.site", "GET", r"/v1\.0/sites/(?P<site>[^/:]+)/?", routes.get)
    add("graph.site.drives", "GET", r"/v1\.0/sites/(?P<site>[^/:]+)/drives/?", routes.drives)
    add("graph.site.drive", "GET", r"/v1\.0/sites/(?P<site>[^/:]+)/drive/?", routes.default_drive)
