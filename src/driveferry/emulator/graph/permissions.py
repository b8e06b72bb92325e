"""Graph sharing: an item's permission resources (grants to users and groups, sharing links), no HTTP here.

Shapes follow the `permission` resource (learn.microsoft.com/en-us/graph/api/resources/permission):
`roles` (read | write | owner), `grantedToV2` (`user` and `siteUser` for a person, `group` and `siteGroup`
for a group, each with `id`, `displayName`, `email`), `link` (`scope` anonymous | organization | users,
`type` view | edit | embed, `webUrl`), `grantedToIdentitiesV2` (the recipients of a users-scope link),
`hasPassword`, `expirationDateTime`, and `inheritedFrom` (`driveId`, `id`, `path`) on a permission an
item has because an ancestor folder has it: listing an item (driveitem-list-permissions) returns its own
permissions and every ancestor's, each marked with the ancestor it comes from, under the same id.

The drive's owner holds an `owner` permission on the root (so every item lists it, inherited), as
OneDrive for Business lists the site owner. `invite` (driveitem-invite) grants to recipients by email;
`createLink` (driveitem-createlink) returns the item's existing link of the same type and scope if there
is one, else a new one (the documented idempotence: "if a sharing link of the specified type already
exists ... the existing sharing link will be returned").
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from driveferry.emulator.graph.errors import InvalidRequest, ItemNotFound
from driveferry.emulator.graph.models import GraphModel, Item

_SCHEMA = """
CREATE TABLE IF NOT EXISTS graph_permissions (
    id TEXT NOT NULL, item_id TEXT NOT NULL, roles TEXT NOT NULL, kind TEXT NOT NULL,
    email TEXT, display TEXT, scope TEXT, link_type TEXT, recipients TEXT NOT NULL DEFAULT '[]',
    has_password INTEGER NOT NULL DEFAULT 0, expiration TEXT, seq INTEGER PRIMARY KEY AUTOINCREMENT
);
CREATE INDEX IF NOT EXISTS graph_permissions_item ON graph_permissions(item_id);
CREATE TABLE IF NOT EXISTS graph_unique_permissions (item_id TEXT PRIMARY KEY);
"""
ROLES = ("read", "write", "owner")
# siteUser alone: a SharePoint-only person (e.g. a guest); siteGroup: a SharePoint group (Owners, Members,
# Visitors of a site), which has a name and no e-mail address
PRINCIPALS = ("user", "group", "siteUser", "siteGroup")
SCOPES = ("anonymous", "organization", "users")
LINK_TYPES = {"view": "read", "embed": "read", "edit": "write"}  # link type -> the role it grants
DEFAULT_OWNER = "alex@contoso.onmicrosoft.com"  # the emulator's signed-in user (identity_microsoft.py)


@dataclass(frozen=True)
class Permission:
    """One stored permission row (the resource is rendered by `GraphPermissions.render`)."""

    id: str
    item_id: str
    roles: tuple[str, ...]
    kind: str  # user | group | siteUser | link
    email: str | None = None
    display: str | None = None
    scope: str | None = None
    link_type: str | None = None
    recipients: tuple[str, ...] = ()
    has_password: bool = False
    expiration: str | None = None


def _identity(email: str, display: str | None) -> dict[str, str]:
    """A person or group as Graph renders it (a stable id per address, like an Entra object id)."""
    oid = hashlib.sha1(email.lower().encode()).hexdigest()
    return {"id": f"{oid[:8]}-{oid[8:12]}-{oid[12:16]}-{oid[16:20]}-{oid[20:32]}",
            "displayName": display or email.split("@")[0], "email": email}


# The item, then each ancestor while the one below it inherits (has no graph_unique_permissions row),
# joined to their permissions: the item's own first (depth 0), then the nearest ancestor's, by seq.
_CHAIN = """
WITH RECURSIVE chain(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM graph_items WHERE id = ?
    UNION ALL
    SELECT g.id, g.parent_id, c.depth + 1 FROM chain c JOIN graph_items g ON g.id = c.parent_id
    WHERE g.deleted = 0 AND NOT EXISTS (SELECT 1 FROM graph_unique_permissions u WHERE u.item_id = c.id)
)
SELECT c.depth AS depth, p.* FROM chain c JOIN graph_permissions p ON p.item_id = c.id ORDER BY c.depth, p.seq
"""


def _permission(r: Any) -> Permission:
    return Permission(id=r["id"], item_id=r["item_id"], roles=tuple(json.loads(r["roles"])), kind=r["kind"],
                      email=r["email"], display=r["display"], scope=r["scope"], link_type=r["link_type"],
                      recipients=tuple(json.loads(r["recipients"])), has_password=bool(r["has_password"]),
                      expiration=r["expiration"])


class GraphPermissions:
    """The permissions of one Graph drive (see module docstring). Thread-safe through State's lock."""

    def __init__(self, model: GraphModel) -> None:
        self.model = model
        self.state = model.state
        with self.state.lock:
            self.state.db.executescript(_SCHEMA)
        if not self.state.get_meta("graph.owner_permission", ""):
            owner = self.state.get_meta("graph.owner", DEFAULT_OWNER)
            self._insert(Permission(id="aTowIy5mfG1lbWJlcnNoaXB8" + secrets.token_hex(6), item_id=model.root_id,
                                    roles=("owner",), kind="user", email=owner))
            self.state.set_meta("graph.owner_permission", "1")

    # --- writing ---------------------------------------------------------------------------------------

    def _insert(self, p: Permission) -> Permission:
        with self.state.tx() as db:
            db.execute("INSERT INTO graph_permissions(id, item_id, roles, kind, email, display, scope, link_type,"
                       " recipients, has_password, expiration) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                       (p.id, p.item_id, json.dumps(list(p.roles)), p.kind, p.email, p.display, p.scope,
                        p.link_type, json.dumps(list(p.recipients)), int(p.has_password), p.expiration))
        return p

    def grant(self, item_id: str, email: str, roles: Iterable[str], *, kind: str = "user",
              display: str | None = None, expiration: str | None = None) -> Permission:
        """A direct grant to a person or group; InvalidRequest for an unknown role or principal kind."""
        item = self.model.get(item_id)
        roles = tuple(roles)
        if kind not in PRINCIPALS or not roles or any(r not in ROLES for r in roles) or not (email or display):
            raise InvalidRequest(f"Invalid grant: kind {kind!r}, roles {list(roles)!r}, email {email!r}.")
        return self._insert(Permission(id=secrets.token_hex(16), item_id=item.id, roles=roles, kind=kind,
                                       email=email, display=display, expiration=expiration))

    def link(self, item_id: str, scope: str, link_type: str, *, recipients: Iterable[str] = (),
             password: bool = False, expiration: str | None = None) -> Permission:
        """The item's sharing link of this scope and type: the existing one, or a new one."""
        item = self.model.get(item_id)
        if scope not in SCOPES:
            raise InvalidRequest(f"Invalid scope {scope!r}; expected one of {', '.join(SCOPES)}.")
        if link_type not in LINK_TYPES:
            raise InvalidRequest(f"Invalid link type {link_type!r}; expected one of {', '.join(LINK_TYPES)}.")
        people = tuple(recipients)
        for p in self.direct(item.id):
            if p.kind == "link" and p.scope == scope and p.link_type == link_type and not people and \
                    not password and expiration is None:
                return p
        return self._insert(Permission(id=secrets.token_hex(16), item_id=item.id, roles=(LINK_TYPES[link_type],),
                                       kind="link", scope=scope, link_type=link_type, recipients=people,
                                       has_password=password, expiration=expiration))

    def stop_inheriting(self, item_id: str) -> None:
        """The item no longer has its ancestors' permissions, only its own (SharePoint's "stop inheriting
        permissions", here without copying the parent's: learn.microsoft.com/en-us/sharepoint/
        what-is-permissions-inheritance)."""
        item = self.model.get(item_id)
        with self.state.tx() as db:
            db.execute("INSERT OR IGNORE INTO graph_unique_permissions(item_id) VALUES(?)", (item.id,))

    def delete(self, item_id: str, permission_id: str) -> None:
        """Remove a direct permission; ItemNotFound when the item has none with this id (an inherited
        one is removed on the folder that holds it)."""
        item = self.model.get(item_id)
        with self.state.tx() as db:
            gone = db.execute("DELETE FROM graph_permissions WHERE item_id=? AND id=?", (item.id, permission_id))
            if gone.rowcount == 0:
                raise ItemNotFound("The permission could not be found.")

    # --- reading ---------------------------------------------------------------------------------------

    def direct(self, item_id: str) -> list[Permission]:
        rows = self.state.query("SELECT * FROM graph_permissions WHERE item_id=? ORDER BY seq", (item_id,))
        return [_permission(r) for r in rows]

    def effective(self, item: Item) -> list[tuple[Permission, Item | None]]:
        """(permission, the ancestor it is inherited from or None) for the item: its own, then each
        ancestor's from the nearest up to the root, or up to the first item that stopped inheriting.
        One query walks the chain (a listing in a `$batch` of 20 used to make ~10 round trips to the
        database per item, each a hand-over of the interpreter between the server's threads)."""
        rows = self.state.query(_CHAIN, (item.id,))
        holders: dict[str, Item] = {}
        out: list[tuple[Permission, Item | None]] = []
        for r in rows:
            holder = None
            if r["depth"]:
                holder = holders.get(r["item_id"])
                if holder is None:
                    holder = holders[r["item_id"]] = self.model.get(r["item_id"])
            out.append((_permission(r), holder))
        return out

    def render(self, p: Permission, inherited_from: Item | None = None) -> dict[str, Any]:
        """The permission resource as Graph returns it."""
        body: dict[str, Any] = {"id": p.id, "roles": list(p.roles), "shareId": "s!" + p.id[:20]}
        if p.kind == "link":
            assert p.scope is not None and p.link_type is not None
            body["link"] = {"scope": p.scope, "type": p.link_type, "preventsDownload": False,
                            "webUrl": f"https://contoso-my.sharepoint.com/:f:/g/personal/{p.id[:12]}"}
            body["hasPassword"] = p.has_password
            if p.recipients:
                body["grantedToIdentitiesV2"] = [{"user": _identity(e, None), "siteUser": _identity(e, None)}
                                                 for e in p.recipients]
        elif p.kind == "siteGroup":
            gid = hashlib.sha1((p.display or "").encode()).hexdigest()
            body["grantedToV2"] = {"siteGroup": {"id": str(int(gid[:4], 16) % 50 + 3), "displayName": p.display,
                                                 "loginName": p.display}}
        else:
            assert p.email is not None
            who = _identity(p.email, p.display)
            if p.kind == "user":
                body["grantedToV2"] = {"user": who, "siteUser": {**who, "loginName": f"i:0#.f|membership|{p.email}"}}
            elif p.kind == "group":
                body["grantedToV2"] = {"group": who, "siteGroup": {"id": who["id"], "displayName": who["displayName"]}}
            else:
                body["grantedToV2"] = {"siteUser": {**who, "loginName": f"i:0#.f|membership|{p.email}"}}
        if p.expiration:
            body["expirationDateTime"] = p.expiration
        if inherited_from is not None:
            path = self.model.path_of(inherited_from)
            body["inheritedFrom"] = {"driveId": self.model.drive_id, "id": inherited_from.id,
                                     "path": "/drive/root:" + path if path else "/drive/root:"}
        return body

    def listing(self, item: Item) -> list[dict[str, Any]]:
        return [self.render(p, src) for p, src in self.effective(item)]


def seed_permissions(perms: GraphPermissions, specs: Iterable[Mapping[str, Any]]) -> int:
    """Apply a seed file's `[[onedrive.permissions]]` rows; returns how many were made.

        { path = "Projects/Shared", user = "bob@contoso.com", roles = ["read"] }
        { path = "Projects/Shared", group = "sales@contoso.com", roles = ["write"] }
        { path = "Projects/Shared", site_user = "guest@fabrikam.com", roles = ["read"] }
        { path = "Projects/Shared", site_group = "Team Site Members", roles = ["write"] }
        { path = "Projects/a.txt", link = "organization", type = "view" }   # anonymous | organization | users
        { path = "Projects/a.txt", link = "users", type = "edit", recipients = ["eve@contoso.com"] }
        { path = "Projects/b.txt", link = "anonymous", type = "view", password = true }
        { path = "Projects/Shared/own.txt", inherit = false }   # stops inheriting its folder's
    """
    count = 0
    for spec in specs:
        item = perms.model.by_path(str(spec["path"]))
        expiration = spec.get("expiration")
        if spec.get("inherit") is False:
            perms.stop_inheriting(item.id)
        elif "link" in spec:
            perms.link(item.id, str(spec["link"]), str(spec.get("type", "view")),
                       recipients=[str(r) for r in spec.get("recipients", [])],
                       password=bool(spec.get("password", False)), expiration=expiration)
        else:
            kind = next((k for k in ("user", "group", "site_user", "site_group") if k in spec), None)
            if kind is None:
                raise InvalidRequest(f"permission for {spec['path']!r}: give user, group, site_user, site_group "
                                     "or link")
            roles = [str(r) for r in spec.get("roles", ["read"])]
            if kind == "site_group":
                perms.grant(item.id, "", roles, kind="siteGroup", display=str(spec[kind]))
            else:
                perms.grant(item.id, str(spec[kind]), roles, kind="siteUser" if kind == "site_user" else kind,
                            display=spec.get("display"), expiration=expiration)
        count += 1
    return count
