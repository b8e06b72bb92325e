"""OneDrive sharing, read side: an item's Graph permissions as `Permission`s (a SharingReader).

`GET {item}/permissions` (learn.microsoft.com/en-us/graph/api/driveitem-list-permissions) returns the
item's own permissions and those it inherits, the latter with `inheritedFrom` naming the ancestor. A
permission is a grant (`grantedToV2` with `user`, `group` or only `siteUser`, each with an `email`) or a
sharing link (`link` with `scope` and `type`; a users-scope link lists its recipients in
`grantedToIdentitiesV2`) (learn.microsoft.com/en-us/graph/api/resources/permission). A SharePoint group
(`siteGroup`: a site's Owners, Members, Visitors) has a display name and no e-mail address; it comes
back as kind "siteGroup" with the name as its address, for the caller to report. `roles` may hold
several values; the widest is the one the permission grants. The legacy `grantedTo` / `grantedToIdentities`
are read when the V2 fields are absent (older tenants and SDKs still send them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driveferry.providers.base import Entry, Permission
from driveferry.providers.onedrive.api import GraphClient

_ROLE_ORDER = ("read", "write", "owner")


def _widest(roles: Any) -> str:
    names = [str(r) for r in roles] if isinstance(roles, list) else []
    known = [r for r in names if r in _ROLE_ORDER]
    if known:
        return max(known, key=_ROLE_ORDER.index)
    return names[0] if names else ""  # an unknown role (e.g. "sp.full control") is passed on and reported


def _email(identity: Any) -> str:
    if not isinstance(identity, Mapping):
        return ""
    return str(identity.get("email") or identity.get("userPrincipalName") or "").strip()


def _principal(granted: Any) -> tuple[str, str]:
    """(kind, address) of a grantedToV2 / grantedTo identity set; ("", "") when it names no one."""
    if not isinstance(granted, Mapping):
        return "", ""
    for key, kind in (("user", "user"), ("group", "group"), ("siteUser", "user"), ("siteGroup", "group")):
        address = _email(granted.get(key))
        if address:
            return kind, address
    site_group = granted.get("siteGroup")
    if isinstance(site_group, Mapping) and site_group.get("displayName"):
        return "siteGroup", str(site_group["displayName"])  # a SharePoint group: a name, no address
    return "", ""


def to_permission(raw: Mapping[str, Any]) -> Permission:
    """A Permission from one Graph permission resource."""
    inherited = raw.get("inheritedFrom")
    common: dict[str, Any] = {
        "id": str(raw.get("id", "")), "role": _widest(raw.get("roles")),
        "inherited_from": str(inherited.get("id")) if isinstance(inherited, Mapping) and inherited.get("id")
        else None,
        "has_password": bool(raw.get("hasPassword")), "expires": raw.get("expirationDateTime") or None}
    link = raw.get("link")
    if isinstance(link, Mapping):
        people = raw.get("grantedToIdentitiesV2") or raw.get("grantedToIdentities") or []
        recipients = tuple(a for a in (_principal(p)[1] for p in people if isinstance(p, Mapping)) if a)
        return Permission(kind="link", link_scope=str(link.get("scope") or ""), link_type=str(link.get("type") or ""),
                          recipients=recipients, **common)
    kind, address = _principal(raw.get("grantedToV2") or raw.get("grantedTo"))
    return Permission(kind=kind or "unknown", address=address, **common)


class GraphSharing:
    """SharingReader for a OneDrive provider's items (read only: a migration never changes the source)."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client

    def list_permissions(self, entry: Entry) -> list[Permission]:
        url = self.client.id_url(entry.id) + "/permissions"
        return [to_permission(raw) for raw in self.client.pages(url)]
