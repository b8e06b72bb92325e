"""What one source permission becomes on Drive: grants no wider than it, or the reason there is none.

Roles: read -> reader, write -> writer, owner -> writer (Drive has one owner per file: the migrating
account; the note says so). Drive's own role names map to themselves (a Drive source), owner again to
writer. Links: organization -> a `domain` permission for the mapped domain; anonymous -> `anyone` only
with --allow-anyone-links; users -> a grant to each listed recipient. A link's type gives its role
(view and embed -> reader, review -> commenter, edit -> writer); any other type is reported, since its
nearest Drive role could allow more (blocksDownload, for instance, has no Drive equivalent that keeps
downloads blocked). Never widened: a password-protected link, and an expiring link that would become a
domain or anyone permission (Drive cannot end those), are reported instead; Drive accepts an end date on
reader and commenter grants to people and groups, so an expiring writer grant is reported too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from driveferry.migrate.sharing.mapping import SharingMap
from driveferry.providers.base import Permission

ROLES = {"read": "reader", "write": "writer", "reader": "reader", "commenter": "commenter", "writer": "writer",
         "fileOrganizer": "writer", "organizer": "writer"}
OWNER_NOTE = "owner on the source; Drive keeps one owner (the migrating account), so granted writer"
LINK_ROLES = {"view": "reader", "embed": "reader", "review": "commenter", "edit": "writer"}
DRIVE_ORDER = ("reader", "commenter", "writer", "fileOrganizer", "organizer", "owner")


@dataclass(frozen=True)
class Grant:
    """A permission to create on Drive (kind user | group | domain | anyone, a Drive role)."""

    kind: str
    role: str
    address: str = ""
    expires: str | None = None
    note: str = ""

    def permission(self) -> Permission:
        return Permission(kind=self.kind, role=self.role, address=self.address, expires=self.expires)

    def to_json(self) -> dict[str, str]:
        out = {"type": self.kind, "role": self.role}
        if self.address:
            out["address"] = self.address
        if self.expires:
            out["expires"] = self.expires
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class Decision:
    """The grants one source permission becomes, and what of it could not be granted (with reasons)."""

    grants: tuple[Grant, ...] = ()
    refused: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def describe(p: Permission) -> dict[str, str]:
    """The source permission for the report."""
    out = {"kind": p.kind, "role": p.role}
    if p.kind == "link":
        out["scope"], out["link_type"] = p.link_scope, p.link_type
        if p.recipients:
            out["recipients"] = ",".join(p.recipients)
    elif p.address:
        out["address"] = p.address
    if p.expires:
        out["expires"] = p.expires
    if p.has_password:
        out["password"] = "yes"
    return out


def _role(p: Permission, link: bool) -> tuple[str | None, str]:
    """(Drive role or None, the note or the reason)."""
    if link:
        role = LINK_ROLES.get(p.link_type)
        return (role, "") if role else (None, f"a {p.link_type or 'typeless'} link has no Drive role that is "
                                              "not wider")
    if p.role == "owner":
        return "writer", OWNER_NOTE
    role = ROLES.get(p.role)
    return (role, "") if role else (None, f"role {p.role or '(none)'} has no Drive equivalent that is not wider")


def _person(kind: str, address: str, role: str, expires: str | None, note: str, mapping: SharingMap
            ) -> Grant | str:
    target, how = mapping.target(address)
    if target is None:
        return how
    if expires and role not in ("reader", "commenter"):
        return f"the grant to {address} ends {expires}; Drive allows an end date on reader and commenter only"
    return Grant(kind, role, target, expires, note)


def decide(p: Permission, mapping: SharingMap, *, allow_anyone: bool) -> Decision:
    """The Drive grants for source permission `p` (see the module docstring for the rules)."""
    if p.kind == "siteGroup":
        return Decision(refused=(f"the SharePoint group {p.address!r} has no e-mail address to map; share with a "
                                 "Google group of its members by hand",))
    if p.kind == "link" and p.link_scope == "existingAccess":
        return Decision(refused=("a link for people who already have access: it grants nothing of its own",))
    role, why = _role(p, p.kind == "link")
    if role is None:
        return Decision(refused=(why,))
    if p.kind in ("user", "group"):
        made = _person(p.kind, p.address, role, p.expires, why, mapping)
        return Decision(grants=(made,)) if isinstance(made, Grant) else Decision(refused=(made,))
    scope = p.link_scope if p.kind == "link" else {"domain": "organization", "anyone": "anonymous"}.get(p.kind, "")
    if p.has_password:
        return Decision(refused=("a password-protected link: Drive links have no password, so the copy would "
                                 "open the item to anyone holding the link",))
    if scope in ("organization", "anonymous") and p.expires:
        return Decision(refused=(f"the link ends {p.expires}; Drive cannot end a domain or anyone permission",))
    if scope == "organization":
        domain, how = mapping.organization_domain() if p.kind == "link" else mapping.target("x@" + p.address)
        if domain is None:
            return Decision(refused=(f"an organization link: {how}",))
        return Decision(grants=(Grant("domain", role, domain.partition("@")[2] or domain, note=why),))
    if scope == "anonymous":
        if not allow_anyone:
            return Decision(refused=("an anyone-with-the-link link: pass --allow-anyone-links to make it a Drive "
                                     "'anyone with the link' permission",))
        return Decision(grants=(Grant("anyone", role, note=why),))
    if scope == "users":
        if not p.recipients:
            return Decision(refused=("a link for specific people whose recipients the source does not list",))
        grants: list[Grant] = []
        refused: list[str] = []
        for person in p.recipients:
            made = _person("user", person, role, p.expires, why, mapping)
            (grants.append(made) if isinstance(made, Grant) else refused.append(made))
        return Decision(grants=tuple(grants), refused=tuple(refused))
    return Decision(refused=(f"a {p.kind or 'nameless'} permission names no person, group or known link scope",))


def covers(existing: str, wanted: str) -> bool:
    """Whether a Drive role `existing` already allows everything `wanted` does."""
    order = DRIVE_ORDER
    return existing in order and wanted in order and order.index(existing) >= order.index(wanted)
