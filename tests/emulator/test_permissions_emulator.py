"""Sharing in the emulator, over HTTP as clients send it: Graph permissions (own and inherited, links of
each scope, invite, createLink, delete) and Drive permissions (create with the real refusals, list with
inheritance and the owner, delete), both seeded from a seed spec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator.seed import SeedSpecError, seed_emulator
from driveferry.emulator.server import Emulator

SPEC: dict[str, Any] = {
    "seed": 3,
    "onedrive": {
        "files": [{"path": "Team/Shared/plan.txt", "size": 10}, {"path": "Team/Shared/deep/x.bin", "size": 5},
                  {"path": "Team/Shared/alone.txt", "size": 1}],
        "permissions": [
            {"path": "Team/Shared", "user": "bob@contoso.com", "roles": ["write"]},
            {"path": "Team/Shared", "group": "sales@contoso.com", "roles": ["read"]},
            {"path": "Team/Shared", "site_group": "Team Site Members", "roles": ["write"]},
            {"path": "Team/Shared/plan.txt", "link": "organization", "type": "view"},
            {"path": "Team/Shared/plan.txt", "link": "users", "type": "edit", "recipients": ["eve@contoso.com"]},
            {"path": "Team/Shared/plan.txt", "link": "anonymous", "type": "view", "password": True},
            {"path": "Team/Shared/deep/x.bin", "site_user": "guest@fabrikam.com", "roles": ["read"]},
            {"path": "Team/Shared/alone.txt", "inherit": False},
        ],
    },
    "gdrive": {"directory": {"domain": "example.com", "accounts": ["bob@example.com"],
                             "groups": ["sales@example.com"], "allow_anyone": False}},
}


class Clouds:
    def __init__(self, emu: Emulator) -> None:
        creds = emu.credentials()
        self.emu = emu
        self.graph = requests.Session()
        self.drive = requests.Session()
        for s in (self.graph, self.drive):
            s.verify, s.trust_env = str(emu.ca_file), False
        self.graph.headers["Authorization"] = "Bearer " + creds["microsoft"]["access_token"]
        self.drive.headers["Authorization"] = "Bearer " + emu.state.issue_token("google", "user@example.com")
        self.g = creds["graph"]["api_root"] + "/me/drive"
        self.d = emu.base_url + "/drive/v3"

    def perms(self, path: str) -> list[dict[str, Any]]:
        r = self.graph.get(f"{self.g}/root:/{path}:/permissions")
        assert r.status_code == 200, r.text
        return list(r.json()["value"])

    def drive_folder(self, name: str, parent: str = "root") -> str:
        r = self.drive.post(f"{self.d}/files", json={"name": name, "parents": [parent],
                                                     "mimeType": "application/vnd.google-apps.folder"})
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    def grant(self, file_id: str, body: dict[str, Any], notify: bool = False) -> requests.Response:
        return self.drive.post(f"{self.d}/files/{file_id}/permissions", json=body,
                               params={"sendNotificationEmail": str(notify).lower(), "fields": "*"})

    def drive_perms(self, file_id: str) -> list[dict[str, Any]]:
        r = self.drive.get(f"{self.d}/files/{file_id}/permissions", params={"fields": "permissions(*)"})
        assert r.status_code == 200, r.text
        return list(r.json()["permissions"])


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clouds]:
    with Emulator(tmp_path_factory.mktemp("sharing"), tls=True) as emu:
        seed_emulator(emu, SPEC)
        yield Clouds(emu)


def _who(p: dict[str, Any]) -> str:
    g = p.get("grantedToV2") or {}
    for k in ("user", "group", "siteUser"):
        if k in g:
            return f"{k}:{g[k]['email']}"
    if "siteGroup" in g:
        return f"siteGroup:{g['siteGroup']['displayName']}"
    return f"link:{p['link']['scope']}:{p['link']['type']}"


def test_graph_lists_own_and_inherited_permissions_with_their_source(clouds: Clouds) -> None:
    folder = clouds.perms("Team/Shared")
    child = clouds.perms("Team/Shared/deep/x.bin")
    own = {_who(p): p for p in folder if "inheritedFrom" not in p}
    assert set(own) == {"user:bob@contoso.com", "group:sales@contoso.com", "siteGroup:Team Site Members"}
    assert "email" not in own["siteGroup:Team Site Members"]["grantedToV2"]["siteGroup"]
    assert own["user:bob@contoso.com"]["roles"] == ["write"] and own["group:sales@contoso.com"]["roles"] == ["read"]
    inherited = {_who(p): p for p in child if "inheritedFrom" in p}
    assert {"user:bob@contoso.com", "group:sales@contoso.com"} <= set(inherited)
    assert inherited["user:bob@contoso.com"]["id"] == own["user:bob@contoso.com"]["id"]  # the same id
    assert inherited["user:bob@contoso.com"]["inheritedFrom"]["path"] == "/drive/root:/Team/Shared"
    # the drive owner's permission sits on the root: everything lists it, inherited
    owner = [p for p in child if p["roles"] == ["owner"]]
    assert len(owner) == 1 and owner[0]["inheritedFrom"]["path"] == "/drive/root:"
    assert [_who(p) for p in child if "inheritedFrom" not in p] == ["siteUser:guest@fabrikam.com"]


def test_an_item_that_stopped_inheriting_lists_only_its_own(clouds: Clouds) -> None:
    assert clouds.perms("Team/Shared/alone.txt") == []
    assert len(clouds.perms("Team/Shared/plan.txt")) > 3  # its sibling still inherits


def test_graph_links_of_each_scope(clouds: Clouds) -> None:
    links = {p["link"]["scope"]: p for p in clouds.perms("Team/Shared/plan.txt")
             if "link" in p and "inheritedFrom" not in p}
    assert set(links) == {"organization", "users", "anonymous"}
    assert links["organization"]["roles"] == ["read"] and links["users"]["roles"] == ["write"]
    assert [i["user"]["email"] for i in links["users"]["grantedToIdentitiesV2"]] == ["eve@contoso.com"]
    assert links["anonymous"]["hasPassword"] is True and links["organization"]["hasPassword"] is False


def test_graph_invite_create_link_and_delete(clouds: Clouds) -> None:
    base = f"{clouds.g}/root:/Team/Shared/deep:"
    r = clouds.graph.post(base + "/invite", json={"recipients": [{"email": "zoe@contoso.com"}], "roles": ["read"],
                                                  "requireSignIn": True, "sendInvitation": False})
    assert r.status_code == 200, r.text
    pid = r.json()["value"][0]["id"]
    first = clouds.graph.post(base + "/createLink", json={"type": "view", "scope": "organization"})
    again = clouds.graph.post(base + "/createLink", json={"type": "view", "scope": "organization"})
    assert (first.status_code, again.status_code) == (201, 200) and first.json()["id"] == again.json()["id"]
    bad = clouds.graph.post(base + "/createLink", json={"type": "view", "scope": "everyone"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalidRequest"
    assert "user:zoe@contoso.com" in {_who(p) for p in clouds.perms("Team/Shared/deep/x.bin")}
    assert clouds.graph.delete(f"{base}/permissions/{pid}").status_code == 204
    assert "user:zoe@contoso.com" not in {_who(p) for p in clouds.perms("Team/Shared/deep/x.bin")}
    # an inherited permission is removed on its folder, not on a child
    assert clouds.graph.delete(f"{clouds.g}/root:/Team/Shared/deep/x.bin:/permissions/{first.json()['id']}"
                               ).status_code == 404


def test_drive_refuses_an_address_without_account_when_not_notifying(clouds: Clouds) -> None:
    fid = clouds.drive_folder("refusals")
    r = clouds.grant(fid, {"type": "user", "role": "reader", "emailAddress": "nobody@elsewhere.org"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]["errors"][0]
    assert err["reason"] == "invalidSharingRequest"
    assert "no Google account associated with this email address" in err["message"]
    assert "nobody@elsewhere.org" in err["message"]
    # with the invitation email the same grant is made
    assert clouds.grant(fid, {"type": "user", "role": "reader", "emailAddress": "nobody@elsewhere.org"},
                        notify=True).status_code == 200
    # policy: anyone refused here; the domain allowed only for the Workspace domain
    anyone = clouds.grant(fid, {"type": "anyone", "role": "reader"})
    assert anyone.status_code == 400 and anyone.json()["error"]["errors"][0]["reason"] == "invalidSharingRequest"
    other = clouds.grant(fid, {"type": "domain", "role": "reader", "domain": "contoso.com"})
    assert other.status_code == 400
    missing = clouds.grant(fid, {"type": "user", "role": "reader"})
    assert missing.status_code == 400 and missing.json()["error"]["errors"][0]["reason"] == "required"
    role = clouds.grant(fid, {"type": "user", "role": "boss", "emailAddress": "bob@example.com"})
    assert role.status_code == 400 and role.json()["error"]["errors"][0]["reason"] == "invalid"
    owner = clouds.grant(fid, {"type": "user", "role": "owner", "emailAddress": "bob@example.com"})
    assert owner.status_code == 403


def test_drive_permissions_inherit_list_and_delete(clouds: Clouds) -> None:
    top = clouds.drive_folder("inherit")
    sub = clouds.drive_folder("sub", top)
    r = clouds.grant(top, {"type": "user", "role": "writer", "emailAddress": "bob@example.com"})
    assert r.status_code == 200, r.text
    made = r.json()
    assert (made["type"], made["role"], made["emailAddress"]) == ("user", "writer", "bob@example.com")
    assert clouds.grant(top, {"type": "group", "role": "reader", "emailAddress": "sales@example.com"}).status_code == 200
    assert clouds.grant(top, {"type": "domain", "role": "reader", "domain": "example.com"}).status_code == 200
    seen = {(p["type"], p.get("emailAddress") or p.get("domain"), p["role"]) for p in clouds.drive_perms(sub)}
    assert seen == {("user", "user@example.com", "owner"), ("user", "bob@example.com", "writer"),
                    ("group", "sales@example.com", "reader"), ("domain", "example.com", "reader")}
    # granting again is one permission per principal (the same id), not a second one
    again = clouds.grant(top, {"type": "user", "role": "writer", "emailAddress": "bob@example.com"})
    assert again.json()["id"] == made["id"] and len(clouds.drive_perms(top)) == 4
    assert clouds.drive.delete(f"{clouds.d}/files/{top}/permissions/{made['id']}").status_code == 204
    assert "bob@example.com" not in {p.get("emailAddress") for p in clouds.drive_perms(sub)}
    gone = clouds.drive.delete(f"{clouds.d}/files/{top}/permissions/{made['id']}")
    assert gone.status_code == 404


def test_a_malformed_permission_row_is_a_seed_error(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu", tls=True) as emu:
        with pytest.raises(SeedSpecError, match="onedrive.permissions"):
            seed_emulator(emu, {"onedrive": {"files": [{"path": "a.txt", "size": 1}],
                                             "permissions": [{"path": "a.txt", "link": "public"}]}})


def test_the_example_seed_applies(tmp_path: Path) -> None:
    from driveferry.emulator.seed import load_spec
    spec = load_spec(Path(__file__).resolve().parents[2] / "configs" / "emulator" / "sharing.example.toml")
    with Emulator(tmp_path / "emu", tls=True) as emu:
        seed_emulator(emu, spec)
        links = [p for p in Clouds(emu).perms("Projects/Shared/plan.txt") if "link" in p]
        assert {p["link"]["scope"] for p in links} == {"organization", "users", "anonymous"}
