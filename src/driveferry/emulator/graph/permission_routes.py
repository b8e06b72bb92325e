"""Graph sharing over HTTP: list, get and delete an item's permissions, `invite` and `createLink`.

Routes (under any item address, `/me/drive/...` or `/drives/{id}/...`, by id or by path):
- `GET .../permissions` -> `{"value": [permission, ...]}` (driveitem-list-permissions: the item's own and
  inherited ones; learn.microsoft.com/en-us/graph/api/driveitem-list-permissions);
- `GET|DELETE .../permissions/{perm-id}` (permission-get, permission-delete; deleting an inherited
  permission on a child is 404 here: it is removed on the folder that holds it);
- `POST .../invite` `{"recipients": [{"email"}], "roles": ["read"|"write"], "requireSignIn", "sendInvitation"}`
  -> `{"value": [permission]}` (driveitem-invite);
- `POST .../createLink` `{"type": "view"|"edit"|"embed", "scope": "anonymous"|"organization"|"users",
  "password"?, "expirationDateTime"?, "recipients"?}` -> the permission, 201 when new, 200 when the item
  already had that link (driveitem-createlink).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from driveferry.emulator.graph.errors import InvalidRequest, ItemNotFound
from driveferry.emulator.graph.permissions import GraphPermissions
from driveferry.emulator.http import Request, Response

if TYPE_CHECKING:
    from driveferry.emulator.graph.routes import GraphApi

Add = Callable[[str, str, str, Callable[[Request], Response]], None]


class PermissionRoutes:
    """The handlers; `register` adds them through the Graph module's own `add` (its guard and errors)."""

    def __init__(self, api: GraphApi) -> None:
        self.api = api
        self.perms = GraphPermissions(api.model)

    def register(self, add: Add, sub: str) -> None:
        """`sub` is the item-address pattern that is followed by a segment (routes._SUB)."""
        add("graph.permissions.list", "GET", sub + "/permissions", self.list)
        add("graph.permissions.get", "GET", sub + "/permissions/(?P<perm>[^/]+)", self.get)
        add("graph.permissions.delete", "DELETE", sub + "/permissions/(?P<perm>[^/]+)", self.delete)
        add("graph.invite", "POST", sub + r"/(?:microsoft\.graph\.)?invite", self.invite)
        add("graph.createLink", "POST", sub + r"/(?:microsoft\.graph\.)?createLink", self.create_link)

    def list(self, req: Request) -> Response:
        item = self.api._item(req)
        return Response.json({"value": self.perms.listing(item)})

    def get(self, req: Request) -> Response:
        item = self.api._item(req)
        for p, source in self.perms.effective(item):
            if p.id == req.params["perm"]:
                return Response.json(self.perms.render(p, source))
        raise ItemNotFound("The permission could not be found.")

    def delete(self, req: Request) -> Response:
        self.perms.delete(self.api._item(req).id, req.params["perm"])
        return Response.empty(204)

    def invite(self, req: Request) -> Response:
        from driveferry.emulator.graph.routes import json_body
        item = self.api._item(req)
        body = json_body(req)
        recipients, roles = body.get("recipients"), body.get("roles")
        if not isinstance(recipients, list) or not recipients or not isinstance(roles, list) or not roles:
            raise InvalidRequest("recipients and roles are required.")
        emails = [r.get("email") for r in recipients if isinstance(r, dict)]
        if len(emails) != len(recipients) or not all(isinstance(e, str) and "@" in e for e in emails):
            raise InvalidRequest("Each recipient needs an email address.")
        if any(r not in ("read", "write") for r in roles):  # an invitation cannot make an owner
            raise InvalidRequest(f"Invalid roles {roles!r}; expected read or write.")
        made = [self.perms.grant(item.id, str(e), [str(r) for r in roles],
                                 expiration=_text(body.get("expirationDateTime"))) for e in emails]
        return Response.json({"value": [self.perms.render(p) for p in made]})

    def create_link(self, req: Request) -> Response:
        from driveferry.emulator.graph.routes import json_body
        item = self.api._item(req)
        body = json_body(req)
        recipients = body.get("recipients") or []
        emails = [str(r.get("email")) for r in recipients if isinstance(r, dict) and r.get("email")]
        before = {p.id for p in self.perms.direct(item.id)}
        p = self.perms.link(item.id, str(body.get("scope", "anonymous")), str(body.get("type", "")),
                            recipients=emails, password=bool(body.get("password")),
                            expiration=_text(body.get("expirationDateTime")))
        return Response.json(self.perms.render(p), 200 if p.id in before else 201)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
