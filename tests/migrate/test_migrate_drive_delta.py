"""An incremental re-run from a Drive source plans from Drive's changes feed (GDriveDelta), not a walk.

Drive -> local: a first run copies everything and stores a changes cursor; the Drive side then gets a
changed file, new files, a deleted and a trashed file, and a change outside the source folder. The
re-run must list only the changes (the emulator's per-route counters: `drive.changes.list` read, no
folder walk through `drive.files.list`), copy exactly the changed and new files, and leave the
destination equal to the source plus the files deleted there (a migration never deletes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from world import World, summary_of

from driveferry.emulator.drive.hashing import write_blob
from driveferry.emulator.drive.routes import drive_model

DRIVE_TREE = {
    "seed": 8,
    "gdrive": {"files": [{"path": "Src/keep.txt", "size": "3K", "content": "text"},
                         {"path": "Src/change.bin", "size": "40K"},
                         {"path": "Src/sub/gone.bin", "size": "5K"},
                         {"path": "Src/sub/binned.bin", "size": "6K"},
                         {"path": "Src/sub/deeper/leaf.bin", "size": "7K"},
                         {"path": "Other/outside.bin", "size": "1K"}]},
    "onedrive": {"files": [{"path": "Projects/x.bin", "size": 1}]},
}


def source_bytes(world: World, folder: str = "Src") -> dict[str, bytes]:
    """Every live file under `folder` on the emulated Drive, by relative path, read from the model."""
    m = drive_model(world.emu)
    (top,) = m.find_by_path(folder)
    out: dict[str, bytes] = {}
    stack = [(top, "")]
    while stack:
        cur, rel = stack.pop()
        for child in m.children(cur.id):
            if m.is_trashed(child):
                continue
            path = f"{rel}/{child.name}" if rel else child.name
            if child.is_folder:
                stack.append((child, path))
            else:
                blob = m.blob_path(child)
                out[path] = blob.read_bytes() if blob else b""
    return out


def local_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def requests_by_route(world: World) -> dict[str, int]:
    return dict(world.counters()["requests"])


def migrate(world: World, out: Path) -> dict[str, Any]:
    return summary_of(world.cli("migrate", "emu-gdrive:Src", str(out), "--journal", str(world.journal), "--json",
                                check=True))


def set_content(world: World, path: str, data: bytes) -> None:
    m = drive_model(world.emu)
    (f,) = m.find_by_path(path)
    m.update(f.id, {}, content=write_blob(m.state.new_blob_path(), [data]))


@pytest.mark.parametrize("world", [DRIVE_TREE], indirect=True)
def test_drive_rerun_lists_only_changes_and_destination_matches(world: World, tmp_path: Path) -> None:
    out = tmp_path / "out"
    world.control("POST", "/counters/reset")
    first = migrate(world, out)
    walk_lists = requests_by_route(world).get("drive.files.list", 0)
    assert first["copied"] == 5 and first["failed"] == 0 and first["incremental"] is False
    before = source_bytes(world)
    assert local_tree(out) == before
    m = drive_model(world.emu)
    changed = b"changed bytes " * 3000
    set_content(world, "Src/change.bin", changed)
    (sub,) = m.find_by_path("Src/sub")
    m.create_file("new.txt", [b"brand new\n"], parent=sub.id)
    (deeper,) = m.find_by_path("Src/sub/deeper")
    m.create_file("new-deep.bin", [b"\x00\x01" * 5000], parent=deeper.id)
    m.delete(m.find_by_path("Src/sub/gone.bin")[0].id)
    m.update(m.find_by_path("Src/sub/binned.bin")[0].id, {"trashed": True})
    set_content(world, "Other/outside.bin", b"not ours")
    world.control("POST", "/counters/reset")

    second = migrate(world, out)
    counts = requests_by_route(world)
    assert second["incremental"] is True and second["failed"] == 0
    assert second["planned"] == 3 and second["copied"] == 3  # change.bin, new.txt, new-deep.bin
    assert counts.get("drive.changes.list", 0) >= 1
    after = source_bytes(world)
    assert after["change.bin"] == changed and "sub/gone.bin" not in after
    expected = {**after, "sub/gone.bin": before["sub/gone.bin"], "sub/binned.bin": before["sub/binned.bin"]}
    assert local_tree(out) == expected
    assert "outside.bin" not in local_tree(out)

    world.control("POST", "/counters/reset")
    third = migrate(world, out)  # nothing changed since: nothing planned, nothing sent
    assert third["incremental"] is True and third["planned"] == 0 and third["copied"] == 0
    assert local_tree(out) == expected
    # The changes cost no listing: the re-run's files.list calls are those of a run with nothing to do
    # (finding the folder "Src" by name), where the first run's walk listed Src, sub and deeper besides.
    idle_lists = requests_by_route(world).get("drive.files.list", 0)
    assert counts.get("drive.files.list", 0) == idle_lists and walk_lists == idle_lists + 3


@pytest.mark.parametrize("world", [DRIVE_TREE], indirect=True)
def test_drive_rerun_after_a_folder_rename_copies_its_contents_under_the_new_name(world: World,
                                                                                   tmp_path: Path) -> None:
    out = tmp_path / "out"
    migrate(world, out)
    m = drive_model(world.emu)
    (sub,) = m.find_by_path("Src/sub")
    m.update(sub.id, {"name": "renamed"})  # Drive reports the folder only; its files' paths changed too
    second = migrate(world, out)
    assert second["incremental"] is True and second["failed"] == 0
    assert second["copied"] == 3  # renamed/gone.bin, renamed/binned.bin, renamed/deeper/leaf.bin
    tree = local_tree(out)
    now = source_bytes(world)
    assert {k: v for k, v in tree.items() if k.startswith("renamed/")} == \
        {k: v for k, v in now.items() if k.startswith("renamed/")}
    assert sorted(k for k in now if k.startswith("renamed/")) == ["renamed/binned.bin", "renamed/deeper/leaf.bin",
                                                                   "renamed/gone.bin"]
