"""Drive sharing: permissions on files and folders, the accounts that exist, and the domain's policy.

Permission resource (developers.google.com/drive/api/reference/rest/v3/permissions): `kind`
"drive#permission", `id`, `type` (user | group | domain | anyone), `role` (owner | organizer |
fileOrganizer | writer | commenter | reader), `emailAddress` (user, group), `domain` (domain),
`allowFileDiscovery` (domain, anyone), `displayName`, `expirationTime`, `deleted`. A user's or group's
permission id is the same on every file (the permissionId of about.user); `anyone` is "anyoneWithLink"
when it is not discoverable, else "anyone".

In My Drive a folder's permissions apply to everything in it: `permissions.list` on an item returns its
owner, its own permissions and its ancestors', one per id with the highest role (the sharing guide,
developers.google.com/drive/api/guides/manage-sharing: "permissions ... propagate from parent to child").

The directory (seedable, `[gdrive.directory]`): the Workspace domain, the Google accounts and groups
that exist, and whether the domain lets its users share with `anyone` / the `domain` / outside it.
`permissions.create` with `sendNotificationEmail=false` for an address with no Google account is refused
as Drive refuses it: 400 invalidSharingRequest 'Bad Request. User message: "You are trying to invite X.
Since there is no Google account associated with this email address, you must check the "Notify people"
box to invite this recipient."' (the message GAM documents, github.com/GAM-team/GAM wiki
Users-Drive-Permissions). A grant the policy forbids is 400 invalidSharingRequest 'Bad Request. User
message: "ACL change not allowed."' [OBS, public reports; the exact text varies by policy].
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from driveferry.emulator.drive.errors import DriveError, bad_request, invalid_value
from driveferry.emulator.drive.models import SEED_OWNER, DriveModel
from driveferry.emulator.drive.records import DriveFile, permission_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drive_permissions (
    file_id TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, role TEXT NOT NULL, email TEXT,
    domain TEXT, discoverable INTEGER NOT NULL DEFAULT 0, expiration TEXT,
    PRIMARY KEY (file_id, id)
);
"""
TYPES = ("user", "group", "domain", "anyone")
ROLES = ("reader", "commenter", "writer", "fileOrganizer", "organizer", "owner")  # narrowest first
_META = "drive.directory"


@dataclass(frozen=True)
class Directory:
    """Who exists on the Google side and what the domain allows."""

    domain: str = "example.com"
    accounts: frozenset[str] = field(default_factory=lambda: frozenset({SEED_OWNER}))
    groups: frozenset[str] = frozenset()
    allow_anyone: bool = True
    allow_domain: bool = True
    allow_external: bool = True  # users and groups outside `domain`

    def to_json(self) -> dict[str, Any]:
        return {"domain": self.domain, "accounts": sorted(self.accounts), "groups": sorted(self.groups),
                "allow_anyone": self.allow_anyone, "allow_domain": self.allow_domain,
                "allow_external": self.allow_external}


def _refused(message: str) -> DriveError:
    return DriveError(400, "invalidSharingRequest", f'Bad Request. User message: "{message}"')


class DrivePermissions:
    """The permissions of the emulated Drive (see module docstring)."""

    def __init__(self, model: DriveModel) -> None:
        self.model = model
        self.state = model.state
        with self.state.lock:
            self.state.db.executescript(_SCHEMA)

    # --- the directory ---------------------------------------------------------------------------------

    def directory(self) -> Directory:
        raw = self.state.get_meta(_META, "")
        if not raw:
            return Directory()
        d = json.loads(raw)
        return Directory(domain=d["domain"], accounts=frozenset(a.lower() for a in d["accounts"]),
                         groups=frozenset(g.lower() for g in d["groups"]), allow_anyone=d["allow_anyone"],
                         allow_domain=d["allow_domain"], allow_external=d["allow_external"])

    def set_directory(self, spec: Mapping[str, Any]) -> Directory:
        """Replace the directory from a `[gdrive.directory]` table; the seed owner always exists."""
        base = Directory()
        d = Directory(domain=str(spec.get("domain", base.domain)),
                      accounts=frozenset({SEED_OWNER, *(str(a).lower() for a in spec.get("accounts", []))}),
                      groups=frozenset(str(g).lower() for g in spec.get("groups", [])),
                      allow_anyone=bool(spec.get("allow_anyone", True)), allow_domain=bool(spec.get("allow_domain", True)),
                      allow_external=bool(spec.get("allow_external", True)))
        self.state.set_meta(_META, json.dumps(d.to_json()))
        return d

    # --- permissions -----------------------------------------------------------------------------------

    def _rows(self, file_id: str) -> list[dict[str, Any]]:
        rows = self.state.query("SELECT * FROM drive_permissions WHERE file_id=? ORDER BY rowid", (file_id,))
        out = []
        for r in rows:
            res: dict[str, Any] = {"kind": "drive#permission", "id": r["id"], "type": r["type"], "role": r["role"]}
            if r["email"]:
                res["emailAddress"] = r["email"]
                res["displayName"] = r["email"].split("@")[0]
            if r["domain"]:
                res["domain"] = r["domain"]
                res["displayName"] = r["domain"]
            if r["type"] in ("domain", "anyone"):
                res["allowFileDiscovery"] = bool(r["discoverable"])
            if r["expiration"]:
                res["expirationTime"] = r["expiration"]
            res["deleted"] = False
            out.append(res)
        return out

    def listing(self, f: DriveFile) -> list[dict[str, Any]]:
        """The owner's, the item's own and its ancestors' permissions: one per id, the highest role."""
        by_id: dict[str, dict[str, Any]] = {}
        if f.drive_id is None:
            owner = f.owner
            by_id[permission_id(owner)] = {"kind": "drive#permission", "id": permission_id(owner), "type": "user",
                                           "role": "owner", "emailAddress": owner,
                                           "displayName": owner.split("@")[0], "deleted": False}
        cur: DriveFile | None = f
        while cur is not None:
            for p in self._rows(cur.id):
                have = by_id.get(p["id"])
                if have is None or ROLES.index(p["role"]) > ROLES.index(have["role"]):
                    by_id[p["id"]] = p
            cur = self.model.find(cur.parent) if cur.parent else None
        return list(by_id.values())

    def create(self, f: DriveFile, body: Mapping[str, Any], *, notify: bool, transfer_ownership: bool
               ) -> dict[str, Any]:
        """permissions.create on `f` (see module docstring for the refusals). A grant to a principal
        that already has a permission on the item replaces its role (one permission per principal)."""
        ptype, role = body.get("type"), body.get("role")
        if not ptype:
            raise DriveError(400, "required", "The permission type field is required.", location="permission.type")
        if not role:
            raise DriveError(400, "required", "The permission role field is required.", location="permission.role")
        if ptype not in TYPES:
            raise invalid_value("permission.type", "The provided value for the permission type field is invalid.")
        if role not in ROLES:
            raise invalid_value("permission.role", "The provided value for the permission role field is invalid.")
        if role == "owner" and not transfer_ownership:
            raise DriveError(403, "forbidden", "The transferOwnership parameter must be enabled when the "
                             "permission role is 'owner'.")
        directory = self.directory()
        email = str(body.get("emailAddress") or "").strip().lower()
        domain = str(body.get("domain") or "").strip().lower()
        if ptype in ("user", "group"):
            if not email:
                raise DriveError(400, "required", "The permission emailAddress field is required.",
                                 location="permission.emailAddress")
            known = directory.accounts | {f.owner.lower()} if ptype == "user" else directory.groups
            if email not in known and not notify:
                raise _refused(f"You are trying to invite {email}. Since there is no Google account associated "
                               "with this email address, you must check the \"Notify people\" box to invite "
                               "this recipient.")
            if not directory.allow_external and not email.endswith("@" + directory.domain):
                raise _refused("ACL change not allowed.")
            pid = permission_id(email)
        elif ptype == "domain":
            if not domain:
                raise DriveError(400, "required", "The permission domain field is required.",
                                 location="permission.domain")
            if not directory.allow_domain or domain != directory.domain.lower():
                raise _refused("ACL change not allowed.")
            pid = permission_id("domain:" + domain) + "k"
        else:
            if not directory.allow_anyone:
                raise _refused("ACL change not allowed.")
            pid = "anyone" if body.get("allowFileDiscovery") else "anyoneWithLink"
        expiration = body.get("expirationTime")
        if expiration is not None and (ptype not in ("user", "group") or not isinstance(expiration, str)):
            raise bad_request("Expiration dates can only be set on user and group permissions.", "expirationTime")
        with self.state.tx() as db:
            db.execute("INSERT OR REPLACE INTO drive_permissions(file_id, id, type, role, email, domain, discoverable,"
                       " expiration) VALUES(?,?,?,?,?,?,?,?)",
                       (f.id, pid, ptype, role, email or None, domain or None,
                        int(bool(body.get("allowFileDiscovery"))), expiration))
        return next(p for p in self._rows(f.id) if p["id"] == pid)

    def delete(self, f: DriveFile, pid: str) -> None:
        with self.state.tx() as db:
            if db.execute("DELETE FROM drive_permissions WHERE file_id=? AND id=?", (f.id, pid)).rowcount == 0:
                raise DriveError(404, "notFound", f"Permission not found: {pid}.", location="permissionId")


# --- HTTP ------------------------------------------------------------------------------------------------

_DEFAULT_PERMISSION = "kind,id,type,role"  # a partial response's default [DISC]
_DEFAULT_LIST = "kind,permissions(kind,id,type,role)"


def register_permissions(add: Any, v3: str, model: DriveModel) -> DrivePermissions:
    """Add `drive.permissions.{list,create,get,delete}` under `{v3}/files/{id}/permissions`."""
    from driveferry.emulator.drive import fields
    from driveferry.emulator.drive.media import json_body
    from driveferry.emulator.http import Request, Response
    perms = DrivePermissions(model)
    base = v3 + "/files/(?P<id>[^/]+)/permissions"

    def target(req: Request) -> DriveFile:
        return model.get(req.params["id"], all_drives=req.flag("supportsAllDrives"))

    def listing(req: Request) -> Response:
        body = {"kind": "drive#permissionList", "permissions": perms.listing(target(req))}
        return Response.json(fields.apply(body, fields.parse(req.arg("fields") or _DEFAULT_LIST)))

    def create(req: Request) -> Response:
        f = target(req)
        notify = (req.arg("sendNotificationEmail") or "true").lower() != "false"  # true unless said (docs)
        made = perms.create(f, json_body(req), notify=notify, transfer_ownership=req.flag("transferOwnership"))
        return Response.json(fields.apply(made, fields.parse(req.arg("fields") or _DEFAULT_PERMISSION)))

    def get(req: Request) -> Response:
        for p in perms.listing(target(req)):
            if p["id"] == req.params["perm"]:
                return Response.json(fields.apply(p, fields.parse(req.arg("fields") or _DEFAULT_PERMISSION)))
        raise DriveError(404, "notFound", f"Permission not found: {req.params['perm']}.", location="permissionId")

    def delete(req: Request) -> Response:
        perms.delete(target(req), req.params["perm"])
        return Response.empty(204)

    add("drive.permissions.list", "GET", base, listing)
    add("drive.permissions.create", "POST", base, create)
    add("drive.permissions.get", "GET", base + "/(?P<perm>[^/]+)", get)
    add("drive.permissions.delete", "DELETE", base + "/(?P<perm>[^/]+)", delete)
    return perms
