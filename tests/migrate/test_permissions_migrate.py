"""migrate --permissions over HTTP against the emulator: a OneDrive tree with shared folders, links of each
scope, group grants, an owner grant and unmappable principals.

- `map`: each copy's own Drive permissions (its list less its folder's, which it inherits) equal what the
  sharing map says, exactly; nothing is wider than the source's; every permission not granted is in the
  report with its reason (unmapped people, a password link, an anonymous link without the flag, Drive's
  refusal of an address that has no Google account).
- `report` (the default) changes nothing on the destination's sharing and reports the same decisions.
- a second `map` grants nothing twice; `--allow-anyone-links` then adds only the anyone link.
- a bad sharing map: exit 2, one line naming the file and line, nothing created.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from world import World, make_world

from driveferry.providers.base import Entry, SharingWriter
from driveferry.providers.ops import walk
from realism_run import REAL, Profile

TREE: dict[str, Any] = {
    "seed": 18,
    "onedrive": {
        "files": [{"path": p, "size": 100} for p in (
            "Projects/readme.txt", "Projects/Shared/plan.txt", "Projects/Shared/sub/deep.bin",
            "Projects/Shared/owned/x.txt", "Projects/Private/secret.txt", "Projects/Shared/alone.txt")],
        "permissions": [
            {"path": "Projects/Shared", "user": "bob@contoso.com", "roles": ["write"]},
            {"path": "Projects/Shared", "group": "sales@contoso.com", "roles": ["read"]},
            {"path": "Projects/Shared", "site_group": "Team Site Members", "roles": ["write"]},
            {"path": "Projects/Shared/plan.txt", "link": "organization", "type": "view"},
            {"path": "Projects/Shared/plan.txt", "link": "users", "type": "edit",
             "recipients": ["eve@contoso.com", "mallory@fabrikam.com"]},
            {"path": "Projects/Shared/plan.txt", "link": "anonymous", "type": "view"},
            {"path": "Projects/Shared/owned", "user": "dave@contoso.com", "roles": ["owner"]},
            {"path": "Projects/Private/secret.txt", "user": "carol@contoso.com", "roles": ["read"]},
            {"path": "Projects/Private/secret.txt", "link": "anonymous", "type": "view", "password": True},
            {"path": "Projects/Private/secret.txt", "site_user": "guest@fabrikam.com", "roles": ["read"]},
            {"path": "Projects/readme.txt", "user": "nobody@contoso.com", "roles": ["read"]},
            {"path": "Projects/Shared/alone.txt", "inherit": False},  # Drive would give it its folder's
        ],
    },
    "gdrive": {"directory": {"domain": "example.com", "groups": ["sales@example.com"],
                             "accounts": ["robert@example.com", "eve@example.com", "carol@example.com",
                                          "dave@example.com"]}},  # no nobody@example.com
}
MAP = """source,target
# people and groups by address; then everyone else at contoso.com by the domain rule
bob@contoso.com,robert@example.com
sales@contoso.com,sales@example.com
alex@contoso.onmicrosoft.com,alex@example.com
*@contoso.com,*@example.com
"""
EXPECTED = {  # each copy's own Drive permissions: (type, address, role)
    "Shared": {("user", "robert@example.com", "writer"), ("group", "sales@example.com", "reader")},
    "Shared/plan.txt": {("domain", "example.com", "reader"), ("user", "eve@example.com", "writer")},
    "Shared/owned": {("user", "dave@example.com", "writer")},
    "Private/secret.txt": {("user", "carol@example.com", "reader")},
}
ANYONE = ("anyone", "", "reader")


@pytest.fixture()
def shared(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, TREE)


def _map_file(world: World, text: str = MAP) -> str:
    path = world.dir / "sharing-map.csv"
    path.write_text(text)
    return str(path)


def _run(world: World, *extra: str) -> dict[str, Any]:
    report = world.dir / "report.json"
    world.cli(*world.migrate_args("--report", str(report), *extra), check=True)
    return dict(json.loads(report.read_text()))


def _own_permissions(world: World) -> dict[str, set[tuple[str, str, str]]]:
    """Every copy's own permissions on Drive: its list less what it inherits (its folder's list) and
    the owner's."""
    gd = world.provider("gdrive")
    sharing = gd.features.sharing
    assert isinstance(sharing, SharingWriter)

    def held(entry: Entry) -> set[tuple[str, str, str]]:
        return {(p.kind, p.address, p.role) for p in sharing.list_permissions(entry) if p.role != "owner"}

    root = gd.stat("Archive")
    lists = {"": held(root)}
    out = {"": lists[""]}
    for found in walk(gd, root):
        lists[found.rel_path] = held(found.entry)
        parent = found.rel_path.rpartition("/")[0]
        out[found.rel_path] = lists[found.rel_path] - lists[parent]
    return out


def _decisions(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(path, source, outcome) for every permission the report mentions, outcome without the status."""
    out = set()
    for item in report["sharing"]["items"]:
        for g in item["granted"]:
            out.add((item["path"], json.dumps(g["source"], sort_keys=True), json.dumps(g["grant"], sort_keys=True)))
        for g in item["not_granted"]:
            outcome = g.get("grant") or g["reason"]
            out.add((item["path"], json.dumps(g["source"], sort_keys=True), json.dumps(outcome, sort_keys=True)))
    return out


def _reasons(report: dict[str, Any]) -> dict[str, list[str]]:
    return {i["path"]: [g["reason"] for g in i["not_granted"]] for i in report["sharing"]["items"]}


def test_report_then_map_then_resume(shared: World) -> None:
    world = shared
    csv = _map_file(world)
    before = _run(world, "--sharing-map", csv)  # --permissions report is the default
    assert before["summary"]["copied"] == 6 and before["summary"]["failed"] == 0
    assert before["sharing"]["mode"] == "report" and before["sharing"]["granted"] == 0
    assert world.counters()["requests"].get("drive.permissions.create", 0) == 0
    assert all(not own for own in _own_permissions(world).values())  # nothing shared on Drive

    after = _run(world, "--permissions", "map", "--sharing-map", csv)
    own = _own_permissions(world)
    assert {path: perms for path, perms in own.items() if perms} == EXPECTED
    assert after["sharing"]["granted"] == sum(len(v) for v in EXPECTED.values())
    # the owner's permission, inherited from above the migrated folder, maps to the Drive owner: present
    root = next(i for i in after["sharing"]["items"] if i["path"] == "/")
    assert [g["status"] for g in root["granted"]] == ["present"]
    notes = [g["grant"].get("note", "") for i in after["sharing"]["items"] for g in i["granted"]]
    assert sum("owner on the source" in n for n in notes) == 2  # the drive owner and dave

    reasons = _reasons(after)
    assert any("mallory@fabrikam.com" in r for r in reasons["Shared/plan.txt"])
    assert any("--allow-anyone-links" in r for r in reasons["Shared/plan.txt"])
    assert any("password" in r for r in reasons["Private/secret.txt"])
    assert any("guest@fabrikam.com" in r for r in reasons["Private/secret.txt"])
    assert len(reasons["readme.txt"]) == 1 and "invalidSharingRequest" in reasons["readme.txt"][0]
    assert any("SharePoint group 'Team Site Members'" in r for r in reasons["Shared"])
    assert after["sharing"]["not_granted"] == 6
    warned = {i["path"]: i["warnings"] for i in after["sharing"]["items"] if i["warnings"]}
    assert list(warned) == ["Shared/alone.txt"] and "stopped inheriting" in warned["Shared/alone.txt"][0]
    # the report run decided the same: everything map granted or was refused, report planned
    assert _decisions(before) == _decisions(after)
    planned = {g["status"] for i in before["sharing"]["items"] for g in i["granted"]}
    assert planned == {"planned"}  # report reads nothing on the destination, not even what it holds

    creates = world.counters()["requests"]["drive.permissions.create"]
    again = _run(world, "--permissions", "map", "--sharing-map", csv)
    assert again["sharing"]["granted"] == 0 and again["sharing"]["present"] == after["sharing"]["granted"] + 1
    assert world.counters()["requests"]["drive.permissions.create"] == creates + 1  # only nobody@, refused again
    assert _own_permissions(world) == own

    anyone = _run(world, "--permissions", "map", "--sharing-map", csv, "--allow-anyone-links")
    assert anyone["sharing"]["granted"] == 1
    assert _own_permissions(world)["Shared/plan.txt"] == EXPECTED["Shared/plan.txt"] | {ANYONE}


def test_map_under_realism(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The same grants when Drive refuses writes over its per-user rate and Graph throttles (retried by
    the retry layer like every other call), on the realism profile's scaled clock."""
    profile = Profile(REAL, ("drive.rate_limited", "graph.throttled"))
    for world in make_world(tmp_path, TREE, profile, request):
        report = _run(world, "--permissions", "map", "--sharing-map", _map_file(world))
        assert {path: perms for path, perms in _own_permissions(world).items() if perms} == EXPECTED
        assert report["sharing"]["not_granted"] == 6 and report["summary"]["failed"] == 0


def test_skip_reads_no_permissions(shared: World) -> None:
    report = _run(shared, "--permissions", "skip")
    assert report["sharing"] == {"mode": "skip", "not_run": "skipped (--permissions skip)"}
    assert shared.counters()["requests"].get("graph.permissions.list", 0) == 0


BAD_MAPS = [
    ("source,target\nbob@contoso.com\n", 2, "1 columns"),
    ("bob@contoso.com,robert@example.com\nbob@contoso.com,other@example.com\n", 2, "a second row"),
    ("# map\n*@contoso.com,robert@example.com\n", 2, "domain rule"),
    ("bob,robert@example.com\n", 1, "not an e-mail address"),
]


def test_a_bad_sharing_map_exits_2_and_changes_nothing(shared: World) -> None:
    gd = shared.provider("gdrive")
    for text, line, says in BAD_MAPS:
        csv = _map_file(shared, text)
        proc = shared.cli(*shared.migrate_args("--permissions", "map", "--sharing-map", csv))
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and f"{csv} line {line}" in lines[0] and says in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr
        assert not shared.journal.exists()
        assert "Archive" not in {e.name for e in gd.list(gd.root())}


def test_map_without_a_map_file_exits_2(shared: World) -> None:
    proc = shared.cli(*shared.migrate_args("--permissions", "map"))
    assert proc.returncode == 2 and "--sharing-map" in proc.stderr and not shared.journal.exists()
