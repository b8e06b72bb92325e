"""GDriveDelta (the Drive provider's DeltaLister) against the emulator's changes feed over HTTPS: paths
resolved through parents, items outside the root dropped, deletions and trashing reported as deleted,
a moved-in folder's contents listed, and the cursor moving on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_gdrive_emulator import drive_emulator, drive_model, make_provider

from driveferry.emulator.server import Emulator
from driveferry.providers.base import Kind


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with drive_emulator(tmp_path_factory.mktemp("gdrive-delta")) as e:
        yield e


def test_changes_under_the_root_with_paths_and_deletions(emu: Emulator, tmp_path: Path) -> None:
    gd = make_provider(emu, tmp_path)
    root = gd.root()
    lister = gd.features.delta
    assert lister is not None
    m = drive_model(emu)
    sub = m.create_folder("sub", parent=root.id)
    gone = m.create_file("gone.bin", [b"g"], parent=sub.id)
    binned = m.create_file("binned.bin", [b"b"], parent=sub.id)
    outside_folder = m.create_folder("elsewhere")
    elsewhere = m.create_file("x.bin", [b"x"], parent=outside_folder.id)
    cursor = lister.latest_cursor()
    m.create_file("new.bin", [b"new!"], parent=sub.id)
    m.update(elsewhere.id, {"name": "y.bin"})
    m.delete(gone.id)
    m.update(binned.id, {"trashed": True})
    entries, cursor2 = lister.delta(cursor)
    live = {e.path: e for e in entries if e.properties.get("deleted") != "true"}
    dead = {e.id for e in entries if e.properties.get("deleted") == "true"}
    assert set(live) == {"sub/new.bin"}
    assert live["sub/new.bin"].size == 4 and live["sub/new.bin"].kind is Kind.FILE
    assert dead == {gone.id, binned.id}
    assert all(e.path == "" for e in entries if e.id in dead)
    assert lister.delta(cursor2) == ([], cursor2)  # nothing since


def test_a_folder_moved_in_brings_its_contents(emu: Emulator, tmp_path: Path) -> None:
    gd = make_provider(emu, tmp_path)
    root = gd.root()
    lister = gd.features.delta
    assert lister is not None
    m = drive_model(emu)
    outside = m.create_folder(f"outside-{tmp_path.name}")
    inner = m.create_folder("inner", parent=outside.id)
    m.create_file("deep.bin", [b"d" * 10], parent=inner.id)
    cursor = lister.latest_cursor()
    m.update(outside.id, {"name": "moved"}, add_parents=root.id, remove_parents=m.root_id)
    entries, _ = lister.delta(cursor)
    assert sorted((e.path, e.kind.value) for e in entries) == [
        ("moved", "folder"), ("moved/inner", "folder"), ("moved/inner/deep.bin", "file")]


def test_everything_when_no_cursor(emu: Emulator, tmp_path: Path) -> None:
    gd = make_provider(emu, tmp_path)
    root = gd.root()
    lister = gd.features.delta
    assert lister is not None
    m = drive_model(emu)
    a = m.create_folder("a", parent=root.id)
    m.create_file("f.txt", [b"1"], parent=a.id)
    entries, cursor = lister.delta(None)
    assert sorted(e.path for e in entries) == ["a", "a/f.txt"]
    assert lister.delta(cursor)[0] == []
