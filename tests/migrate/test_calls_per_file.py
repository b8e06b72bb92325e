"""API calls per file, counted by the emulator (requests per route), for a small-file migration.

On a rate-capped API files per second is the rate divided by the calls per file (issue #15), so:
a small file to Drive is one multipart request (folders and the id pool included, at most 1.05 Drive
requests per file); a Graph source gives each file's download URL in its listing, so no file costs a
GET /content; and the summary reports the same figures the emulator counted.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from world import World, drive_tree, read_all, summary_of

from driveferry.integrity.hashes import HashType

FILES = 400  # in 4 folders: 100 files a folder, the shape of the benchmark tree
FOLDERS = 4
MANY: dict[str, Any] = {
    "seed": 9,
    "onedrive": {
        "files": [{"path": f"Projects/d{i % FOLDERS}/f{i:04d}.bin", "size": 1000 + 37 * i} for i in range(FILES)],
    },
}


def _drive(requests: dict[str, int]) -> int:
    return sum(n for route, n in requests.items() if route.startswith("drive."))


@pytest.mark.parametrize("world", [MANY], indirect=True)
def test_small_files_cost_one_drive_request_and_no_graph_metadata_get(world: World) -> None:
    before = dict(world.counters()["requests"])
    summary = summary_of(world.cli(*world.migrate_args("--json", "--transfers", "4"), check=True))
    after = dict(world.counters()["requests"])
    spent = {route: after.get(route, 0) - before.get(route, 0) for route in after}
    assert summary["copied"] == FILES and summary["failed"] == 0 and summary["unverified"] == 0

    # Drive: one multipart create per file; folders, root lookups and the id pool stay within 5 %
    assert spent.get("drive.upload.simple", 0) == FILES
    assert spent.get("drive.upload.initiate", 0) == 0 and spent.get("drive.upload.chunk", 0) == 0
    assert spent.get("drive.files.update", 0) == 0  # no metadata update after an upload
    assert _drive(spent) <= 1.05 * FILES, {r: n for r, n in spent.items() if r.startswith("drive.") and n}

    # Graph: the listing carries each download URL; every file is one ranged GET on it, no /content
    assert spent.get("graph.download", 0) == FILES
    assert spent.get("graph.content", 0) == 0, {r: n for r, n in spent.items() if r.startswith("graph.") and n}

    # the summary's figures are the adapters' own counts of the same requests
    calls = summary["api_calls"]
    assert calls["emu-gdrive"]["by_kind"].get("upload") == FILES
    drive = calls["emu-gdrive"]
    # (the tally is the destination provider's; preflight's own lookups may go through another object)
    assert FILES < drive["requests"] - drive["by_kind"].get("auth", 0) <= _drive(spent)
    assert calls["emu-gdrive"]["per_file"] <= 1.05
    assert calls["emu-onedrive"]["by_kind"].get("media") == FILES

    tree = drive_tree(world)
    gd = world.provider("gdrive")
    for path, data in world.expected().items():
        (entry,) = tree[path]
        assert read_all(gd, entry) == data
        assert entry.hashes[HashType.SHA256] == hashlib.sha256(data).hexdigest()
        assert entry.modified is not None and entry.modified.year < 2026  # the source's time, in the create


@pytest.mark.parametrize("world", [MANY], indirect=True)
def test_terminal_summary_names_calls_per_file(world: World) -> None:
    proc = world.cli(*world.migrate_args()[:-1], check=True)  # not quiet: the summary lines print
    line = next(x for x in proc.stdout.splitlines() if x.startswith("API calls: "))
    assert "emu-gdrive: " in line and "per file copied" in line
