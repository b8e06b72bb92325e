"""The aria2 + FUSE act of `driveferry demo`: how Drive ends up with right-sized files of wrong bytes,
and how `verify` finds them and `--fix` repairs them.

A folder stands for downloads written into a FUSE-mounted Drive; the lazy-sync simulator plays the
mount's sync client against the emulated Drive. aria2 preallocates every file (zeros) and fills pieces
out of order; the sync uploads whatever it sees and ignores later same-size rewrites:
  - 12 downloads are seen while still preallocated: Drive keeps zeros (zero_filled_remote);
  - 3 files are re-downloaded with new content of the same size: Drive keeps the old bytes (stale);
  - 1 download is still running at the first verify: its local copy has a zero-filled tail (and the
    sync already uploaded its preallocated zeros);
  - the other downloads land whole and are fine.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from driveferry.emulator.aria2sim import Aria2Writer
from driveferry.emulator.drive.routes import drive_model
from driveferry.emulator.lazysync import LazySync

FILES = 40
EARLY = 12  # seen by the sync while still preallocated
STALE = 3


def _content(i: int) -> bytes:
    rng = random.Random(i)
    return rng.randbytes(rng.randint(64 * 1024, 2 * 1024 * 1024))


def _age(path: Path, seconds: float) -> None:
    """Make a file look written `seconds` ago (past verify's grace period for pending syncs)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def run_fuse_story(emu: Any, workdir: Path, cli: Callable[..., list[str]], env: dict[str, str]) -> Path:
    """Play the story and return the path of the HTML report of the first verify."""
    local = workdir / "downloads"
    local.mkdir()
    sync = LazySync(local, drive_model(emu), "Downloads")
    writers = [Aria2Writer(local / f"episode-{i:02d}.mkv", _content(i), piece_bytes=64 * 1024,
                           allocation="prealloc", seed=i) for i in range(FILES)]
    for w in writers[:EARLY]:
        w.preallocate()
    sync.sync_once()  # the mount uploads the preallocated zeros of the early files
    for w in writers[EARLY:]:
        w.preallocate()
    for w in writers[:-1]:
        w.finish()
    for w in writers[:-1]:
        _age(w.path, 3600)
    sync.sync_once()  # same-size rewrites of the early files are ignored; the rest upload whole
    last = writers[-1]
    with open(last.path, "r+b") as fh:  # still downloading: the first 40% in place, zeros after it
        fh.write(last.content[: len(last.content) * 2 // 5])
    for i, w in enumerate(writers[EARLY:EARLY + STALE]):  # re-downloaded: new bytes, same size
        new = random.Random(1000 + i).randbytes(len(w.content))
        w.path.write_bytes(new)
        _age(w.path, 1800)
    sync.sync_once()
    _age(last.path, 3600)

    report = workdir / "fuse-report.html"
    target = ["demo-gdrive:Downloads"]
    print("   verify (before the last download finished):", flush=True)
    subprocess.call(cli("verify", str(local), *target, "--report", str(report), "-q"), env=env)
    last.finish()
    _age(last.path, 3600)
    print("\n   the last download finished; verify --fix re-uploads the bad remote copies through the API:",
          flush=True)
    subprocess.call(cli("verify", str(local), *target, "--fix", "-q"), env=env)
    print("\n   verify again:", flush=True)
    final = subprocess.call(cli("verify", str(local), *target, "-q"), env=env)
    if final != 0:
        print(f"   (verify after the repair exited {final})")
    return report
