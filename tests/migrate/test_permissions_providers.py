"""The sharing capabilities of both providers over HTTP, as migrate gets them (wrapped by the retry layer):
OneDrive's permissions normalised (own and inherited, links, recipients, SharePoint groups), Drive's
grants made and listed, and Drive's refusal carried with its reason and never retried."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from world import World, make_world

from driveferry.errors import PermanentError
from driveferry.providers.base import Permission, SharingReader, SharingWriter

TREE: dict[str, Any] = {
    "seed": 4,
    "onedrive": {
        "files": [{"path": "P/S/a.txt", "size": 3}],
        "permissions": [
            {"path": "P/S", "group": "sales@contoso.com", "roles": ["read", "write"]},
            {"path": "P/S", "site_group": "Team Site Visitors", "roles": ["read"]},
            {"path": "P/S/a.txt", "link": "users", "type": "edit", "recipients": ["eve@contoso.com"],
             "expiration": "2031-02-03T04:05:06Z"},
        ],
    },
    "gdrive": {"directory": {"accounts": ["eve@example.com"], "groups": ["sales@example.com"]}},
}


@pytest.fixture()
def both(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, TREE)


def test_onedrive_permissions_are_normalised(both: World) -> None:
    od = both.provider("onedrive")
    reader = od.features.sharing
    assert isinstance(reader, SharingReader) and type(reader).__name__ == "_Capability"  # retried
    folder, file = od.stat("P/S"), od.stat("P/S/a.txt")
    own = {(p.kind, p.address, p.role) for p in reader.list_permissions(folder) if p.inherited_from is None}
    assert own == {("group", "sales@contoso.com", "write"),  # the widest of its roles
                   ("siteGroup", "Team Site Visitors", "read")}
    perms = reader.list_permissions(file)
    link = next(p for p in perms if p.kind == "link")
    assert (link.link_scope, link.link_type, link.recipients, link.role, link.expires, link.inherited_from) == \
        ("users", "edit", ("eve@contoso.com",), "write", "2031-02-03T04:05:06Z", None)
    inherited = {p.address: p.inherited_from for p in perms if p.inherited_from}
    assert inherited["sales@contoso.com"] == folder.id
    assert any(p.role == "owner" and p.inherited_from for p in perms)  # the drive owner's, from the root


def test_drive_grants_list_and_refusals(both: World) -> None:
    gd = both.provider("gdrive")
    writer = gd.features.sharing
    assert isinstance(writer, SharingWriter)
    folder = gd.mkdir(gd.root(), "Shared here")
    made = writer.add_permission(folder, Permission("group", "reader", "sales@example.com"))
    assert (made.kind, made.address, made.role) == ("group", "sales@example.com", "reader") and made.id
    writer.add_permission(folder, Permission("user", "commenter", "eve@example.com", expires="2031-02-03T04:05:06Z"))
    writer.add_permission(folder, Permission("domain", "reader", "example.com"))
    listed = {(p.kind, p.address, p.role, p.expires) for p in writer.list_permissions(folder)}
    assert listed == {("user", "alex@example.com", "owner", None), ("group", "sales@example.com", "reader", None),
                      ("user", "eve@example.com", "commenter", "2031-02-03T04:05:06Z"),
                      ("domain", "example.com", "reader", None)}
    before = both.counters()["requests"]["drive.permissions.create"]
    with pytest.raises(PermanentError) as err:
        writer.add_permission(folder, Permission("user", "reader", "ghost@example.com"))
    assert err.value.code == "invalidSharingRequest" and "Notify people" in str(err.value)
    assert both.counters()["requests"]["drive.permissions.create"] == before + 1  # refused once, not retried
    # sendNotificationEmail=false was sent: with it true, Drive would have invited the address instead
    assert "ghost@example.com" not in {p.address for p in writer.list_permissions(folder)}
