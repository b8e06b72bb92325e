"""Three workers started together under Drive's listing lag make no twin folder and no duplicate file.

Drive's files.list with a query misses a new item for a while (up to minutes), while files.get by id
sees it at once (api-notes Part C §20; rclone#2485). Workers that look a folder up by name before they
create it all miss the others' and make twins. The realism profile lags new items in files.list; the
workers agree on folders through the journal instead. Counted on the emulator's own records (not a
listing, which lags too).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
from world import World, summary_of

from driveferry.journal import Journal
from pg import pg_server, pg_url  # noqa: F401  (fixtures)
from realism_run import kind_and_real

pytestmark = pytest.mark.postgres

LAG_TREE: dict[str, Any] = {
    "seed": 23,
    "onedrive": {
        "files": [{"path": f"Projects/{d}/f{i}.bin", "size": 3000 + 100 * i}
                  for d in ("a", "b", "a/deep", "a/deep/er", "c d", "e") for i in range(3)]
        + [{"path": "Projects/top.txt", "size": "2K", "content": "text"}],
    },
}


def _drive_model(world: World) -> Any:
    return next(m for m in world.emu.modules if getattr(m, "route_prefix", "") == "drive.").model


def _live_tree(world: World) -> tuple[Counter[str], dict[str, list[Any]]]:
    """(folders by path, counted; files by path) of everything untrashed on Drive, read from the
    emulator's records: a twin shows up as a count of 2."""
    drive = _drive_model(world)
    folders: Counter[str] = Counter()
    files: dict[str, list[Any]] = {}
    memo: dict[str, bool] = {}
    stack = [(drive.get("root"), "")]
    while stack:
        folder, path = stack.pop()
        for child in drive.children(folder.id):
            if drive.is_trashed(child, memo):
                continue
            child_path = f"{path}/{child.name}" if path else child.name
            if child.is_folder:
                folders[child_path] += 1
                stack.append((child, child_path))
            else:
                files.setdefault(child_path, []).append(child)
    return folders, files


@pytest.mark.parametrize("world", [LAG_TREE], indirect=True)
@kind_and_real("drive.rate_limited", "graph.throttled")  # a lookup the lag hides is a race: not required
def test_three_workers_under_listing_lag_make_no_twins(world: World, pg_url: str) -> None:  # noqa: F811
    # every new or renamed item stays out of files.list for 10 minutes of wall time: longer than the whole
    # run (on a scaled clock that is clock_scale times as many emulated seconds); the rest of the profile stays
    settings = world.control("GET", "/realism")["settings"]
    lag_s = 600 * settings["clock_scale"]
    settings["drive"] |= {"search_lag_new_s": lag_s, "search_lag_renamed_s": lag_s}
    world.control("PUT", "/realism", settings)
    Journal.open(pg_url).close()  # the tables exist before the workers start
    args = [sys.executable, "-m", "driveferry.cli", "migrate", "emu-onedrive:/Projects", "emu-gdrive:Archive",
            "--journal", pg_url, "--json", "--transfers", "2"]
    env = {**os.environ, "DRIVEFERRY_CONFIG": str(world.config)}
    procs = []
    for n in range(3):
        with open(world.dir / f"lag-{n}.out", "wb") as out, open(world.dir / f"lag-{n}.err", "wb") as err:
            procs.append(subprocess.Popen(args, env=env, stdout=out, stderr=err))
    try:
        for p in procs:
            p.wait(timeout=300)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    outs = [((world.dir / f"lag-{n}.out").read_text(), (world.dir / f"lag-{n}.err").read_text()) for n in range(3)]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, out + err
    summaries = [summary_of(subprocess.CompletedProcess([], 0, out, err)) for out, err in outs]
    assert sum(s["failed"] for s in summaries) == 0, summaries
    assert sum(s["copied"] for s in summaries) == len(world.expected()), summaries

    folders, files = _live_tree(world)
    twins = {path: n for path, n in folders.items() if n > 1}
    assert not twins, twins
    expected_folders = {"Archive", *(f"Archive/{d}" for d in ("a", "b", "a/deep", "a/deep/er", "c d", "e"))}
    assert set(folders) == expected_folders
    expected = {f"Archive/{path}": data for path, data in world.expected().items()}
    assert sorted(files) == sorted(expected)
    drive = _drive_model(world)
    for path, data in expected.items():
        assert len(files[path]) == 1, f"{path} is on Drive {len(files[path])} times"
        blob = drive.blob_path(files[path][0])
        assert blob is not None and blob.read_bytes() == data, path  # the emulator's own bytes
