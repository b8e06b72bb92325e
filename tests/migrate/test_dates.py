"""Every copy keeps its source's modified time, whatever its size, and its created time where the source
has one, on Drive and on OneDrive.

A file larger than one chunk gets its provenance in an update after the last chunk; Drive stamps an
update that does not carry `modifiedTime` with the time of the update (api-notes Part C §20), as the
emulator does (checked first, else this test would prove nothing). Created times: Drive's `createdTime`
is writable on create; Graph's `fileSystemInfo` in createUploadSession's item (api-notes Part B §11.2).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from world import World, make_world

from driveferry.providers.ops import walk

CHUNK = 1280 * 1024
SIZES = {"tiny.txt": 10, "one-chunk.bin": CHUNK, "chunked.bin": 3 * CHUNK + 7, "empty.bin": 0}
DATES_TREE: dict[str, Any] = {
    "seed": 41,
    "onedrive": {"files": [{"path": f"Projects/d/{name}", "size": size} for name, size in SIZES.items()]},
}
CREATED = "2019-05-06T07:08:09Z"  # distinct from every modified time and from the upload time


@pytest.fixture()
def dated(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, DATES_TREE)


def _module(world: World, prefix: str) -> Any:
    return next(m for m in world.emu.modules if getattr(m, "route_prefix", "") == prefix).model


def _files(provider: Any, path: str) -> dict[str, Any]:
    root = provider.stat(path)
    return {f.rel_path: f.entry for f in walk(provider, root, include_folders=False) if f.entry.kind.value == "file"}


def test_the_drive_emulator_stamps_an_update_without_modified_time(dated: World) -> None:
    gd = dated.provider("gdrive")
    drive = _module(dated, "drive.")
    folder = gd.mkdir(gd.root(), "Stamp")
    from driveferry.providers.base import UploadMeta
    old = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    session = gd.begin_upload(folder, "x.bin", 3, UploadMeta(modified=old))
    entry = session.send(0, b"abc", True)
    assert entry is not None and entry.modified == old
    drive.update(entry.id, {"properties": {"k": "v"}})  # an update that does not carry modifiedTime
    assert gd.stat("Stamp/x.bin").modified != old


def test_every_copy_keeps_its_times_on_drive_and_on_onedrive(dated: World) -> None:
    world = dated
    graph = _module(world, "graph.")
    od = world.provider("onedrive")
    for name in ("tiny.txt", "chunked.bin"):
        graph.update(graph.by_path(f"Projects/d/{name}").id, fs_created=CREATED)
    source = _files(od, "Projects/d")
    assert source["chunked.bin"].created == datetime(2019, 5, 6, 7, 8, 9, tzinfo=UTC)
    world.cli(*world.migrate_args("--chunk-size", str(CHUNK)), check=True)
    gd = world.provider("gdrive")
    on_drive = _files(gd, "Archive/d")
    assert sorted(on_drive) == sorted(SIZES)
    for name, src in source.items():
        copy = on_drive[name]
        assert copy.modified == src.modified, (name, copy.modified, src.modified)
        assert copy.created == src.created, (name, copy.created, src.created)

    # and back: Drive -> OneDrive keeps Drive's modified and created times in fileSystemInfo
    args = ["migrate", "emu-gdrive:Archive/d", "emu-onedrive:/Back", "--journal", str(world.dir / "back.sqlite3"),
            "-q", "--chunk-size", str(CHUNK)]
    world.cli(*args, check=True)
    on_onedrive = _files(od, "Back")
    assert sorted(on_onedrive) == sorted(SIZES)
    for name, src in on_drive.items():
        copy = on_onedrive[name]
        assert copy.modified == src.modified, (name, copy.modified, src.modified)
        assert copy.created == src.created, (name, copy.created, src.created)
