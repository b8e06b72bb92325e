"""verify streams: the entries it holds at once are bounded by a folder's listing and the hashing
window, never by the tree (issue #16). Asserted on the merge's own counter, not on time or RSS.

The tree is seeded on the emulated Drive and written locally; verify lists it over real HTTP. A
few copies are damaged so the findings prove the pairing is still exact while streaming.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from driveferry.emulator.generate import content_bytes
from driveferry.emulator.remotes import remote_sections
from driveferry.emulator.seed import seed_emulator
from driveferry.emulator.server import Emulator
from driveferry.providers.ops import resolve
from driveferry.providers.registry import provider_from_section
from driveferry.verify.classify import Policy, Status
from driveferry.verify.compare import compare_local
from driveferry.verify.merge import Held, Listing, merged
from driveferry.verify.sink import FindingSink

FAN_OUT = 4  # folders per folder
DEPTH = 3  # levels of folders below the root
PER_FOLDER = 3  # files per folder


def _tree() -> Iterator[str]:
    def folders(prefix: str, depth: int) -> Iterator[str]:
        yield prefix
        if depth < DEPTH:
            for i in range(FAN_OUT):
                yield from folders(f"{prefix}d{i}/", depth + 1)
    for folder in folders("", 0):
        for j in range(PER_FOLDER):
            yield f"{folder}f{j}.txt"


def test_merge_yields_sorted_paths_holding_only_open_folders() -> None:
    """A synthetic tree of 8 x 8 x 8 folders (1,755 files): every path once, in sorted order, and the
    held count never above the open folders' listings (depth x fan-out), a small share of the tree."""
    fan, files = 8, 3
    held = Held()
    visited = 0

    def lister(prefix: str, _rel: str) -> Listing[str, str]:
        nonlocal visited
        visited += 1
        depth = prefix.count("/")
        out: Listing[str, str] = Listing(files=[(f"f{j}", prefix + f"f{j}") for j in range(files)])
        if depth < 3:
            out.folders.extend((f"d{i}", f"{prefix}d{i}/") for i in range(fan))
        return out

    groups = list(merged([""], [""], lister, lister, held=held))
    paths = [g.rel for g in groups]
    assert len(paths) == files * (1 + fan + fan ** 2 + fan ** 3)
    assert paths == sorted(paths)
    assert all(g.left == g.right == [g.rel] for g in groups)
    one_listing = 2 * (fan + files)  # both sides
    assert held.peak <= 4 * one_listing  # the root's and three open levels' listings
    assert held.peak < len(paths) // 10
    assert held.now == 0


def _provider(emu: Emulator, tmp_path: Path) -> Any:
    sections = remote_sections(emu.describe())
    name = next(k for k in sections if "gdrive" in k)
    return provider_from_section(name, sections[name], tmp_path / "state")


def test_verify_of_a_tree_holds_a_folder_and_a_window_not_the_tree(tmp_path: Path) -> None:
    paths = list(_tree())
    damaged, missing_remote, only_remote = paths[10], paths[40], "d3/d3/extra.txt"
    old = (datetime.now(UTC) - timedelta(days=1)).timestamp()
    local = tmp_path / "local"
    for rel in paths:
        f = local / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        data = content_bytes(1, "gdrive", f"Verify/{rel}", 100)
        f.write_bytes(data + b"!" if rel == damaged else data)  # one more byte: size_mismatch
        os.utime(f, (old, old))
    seeded = [{"path": f"Verify/{rel}", "size": 100} for rel in [*paths, only_remote] if rel != missing_remote]
    with Emulator(tmp_path / "emu") as emu:
        seed_emulator(emu, {"seed": 1, "gdrive": {"files": seeded}})
        provider = _provider(emu, tmp_path)
        held = Held()
        with FindingSink() as sink:
            comp = compare_local(local, provider, resolve(provider, "Verify"), now=datetime.now(UTC),
                                 policy=Policy(), cache=None, workers=2, sink=sink, held=held, checkers=3)
            found = {f.path: f.status for f in sink.findings()}
            summary = sink.summary()
    assert len(paths) == PER_FOLDER * (1 + FAN_OUT + FAN_OUT ** 2 + FAN_OUT ** 3)  # 255 files
    expected = {rel: Status.OK for rel in paths}
    expected[damaged] = Status.SIZE_MISMATCH
    expected[missing_remote] = Status.MISSING_REMOTE
    expected[only_remote] = Status.MISSING_LOCAL
    assert found == expected
    assert summary.total_files == len(expected) and summary.files_of(Status.OK) == len(paths) - 2
    # open folders along one path (root + DEPTH levels), each at most FAN_OUT folders and PER_FOLDER
    # (+1) files per side, plus the hashing window (4 per worker) of files and their remote entries
    bound = (DEPTH + 1) * 2 * (FAN_OUT + PER_FOLDER + 1) + 2 * 4 * 2
    assert comp.peak_held == held.peak <= bound < len(paths) // 3
    assert 0 < comp.peak_ahead <= 3  # remote listings started ahead: at most `checkers` folders
