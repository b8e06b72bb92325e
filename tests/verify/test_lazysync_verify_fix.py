"""The aria2 + FUSE story end to end: aria2-like writes, a lazy sync into the emulated Drive, then the real
`driveferry verify` CLI classifies every file exactly, `--fix` repairs the remote through the API, and a
second verify is all ok.

The test knows the truth of every file: it decides which ones the sync catches preallocated (zeros),
which are rewritten at the same size (stale), which hit the quota (0-byte, size_mismatch), which appear
after the last sync pass (missing) and which are still downloading (pending).

The first test also runs [real] (tests/realism_run.py): its --fix re-uploads 120 files against Drive's
write limit. The second makes the same traffic, so it runs against the kind emulator only.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from driveferry.emulator.aria2sim import Aria2Writer
from driveferry.emulator.drive.models import DriveModel
from driveferry.emulator.drive.routes import drive_model
from driveferry.emulator.lazysync import LazySync
from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.server import Emulator
from realism_run import Profile, kind_and_real, profiled_emulator

N_FILES = 300
DAY = 86400.0


@dataclass
class Setup:
    emu: Emulator
    model: DriveModel
    local: Path
    sync: LazySync
    truth: dict[str, str]
    pending: list[Aria2Writer]
    env: dict[str, str]
    tmp: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "driveferry.cli", *args], capture_output=True, text=True,
                              env=self.env, timeout=300)

    def verify(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli("verify", str(self.local), "emu-gdrive:Downloads", "--grace", "600", "-q", *extra)

    def remote_state(self) -> list[tuple[str, str, str | None, int | None, bool]]:
        return sorted((f.id, f.name, f.md5, f.size, self.model.is_trashed(f)) for f in self.model.all_files())


def _set_mtime(path: Path, when: float) -> None:
    os.utime(path, (when, when))


def _statuses(report: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in report.read_text().splitlines():
        rec = json.loads(line)
        assert rec["path"] not in out, f"{rec['path']} reported twice"
        out[rec["path"]] = rec["status"]
    return out


@pytest.fixture()
def setup(tmp_path: Path, emu_profile: Profile, request: pytest.FixtureRequest) -> Iterator[Setup]:
    with profiled_emulator(emu_profile, tmp_path / "emu", request) as emu:
        model = drive_model(emu)
        config = tmp_path / "remotes.toml"
        config.write_text(remotes_toml(remote_sections(emu.describe())))
        env = {**os.environ, "DRIVEFERRY_CONFIG": str(config),
               "DRIVEFERRY_HASH_CACHE": str(tmp_path / "hashcache.sqlite3")}
        local = tmp_path / "MyDrive" / "Downloads"
        local.mkdir(parents=True)
        sync = LazySync(local, model, "Downloads", delay_s=300)
        yield _build(Setup(emu, model, local, sync, {}, [], env, tmp_path))


def _build(s: Setup) -> Setup:
    """Write and sync the tree; fill `truth` (path -> expected status)."""
    rng = random.Random(42)
    now = time.time()
    first, later = now - 2 * DAY, now - DAY
    kinds = ["ok", "zero_filled_remote", "stale_remote", "size_mismatch", "missing_remote", "pending_sync"]
    plan = {f"d{i % 7}/file-{i:03d}.bin": kinds[i % 10] if i % 10 < 6 else "ok" for i in range(N_FILES)}
    content = {p: rng.randbytes(rng.randint(1024, 64 * 1024)) for p in plan}
    writers = {p: Aria2Writer(s.local / p, content[p], piece_bytes=4096,
                              allocation=("prealloc", "falloc", "trunc")[i % 3], seed=i)
               for i, p in enumerate(plan)}
    # Pass 1: ok and stale files complete, zero-filled ones only preallocated (a few pieces at most).
    for p, kind in plan.items():
        w = writers[p]
        if kind in ("ok", "stale_remote"):
            w.finish()
        elif kind == "zero_filled_remote":
            w.preallocate()
        else:
            continue
        _set_mtime(w.path, first)
    r1 = s.sync.sync_once(now)
    assert len(r1.uploaded) == sum(k in ("ok", "stale_remote", "zero_filled_remote") for k in plan.values())
    # Pass 2: aria2 completes the preallocated files and stale ones are rewritten at the same size (both
    # missed by the sync); the quota runs out for the truncated ones (0-byte files on Drive).
    for p, kind in plan.items():
        w = writers[p]
        if kind == "zero_filled_remote":
            w.finish()
        elif kind == "stale_remote":
            newer = bytes(b ^ 0x5A for b in content[p])
            w.path.write_bytes(newer)
        elif kind == "size_mismatch":
            w.finish()
        else:
            continue
        _set_mtime(w.path, later)
    s.sync.quota_bytes = 0
    r2 = s.sync.sync_once(now)
    s.sync.quota_bytes = None
    assert sorted(r2.quota_failed) == sorted(p for p, k in plan.items() if k == "size_mismatch")
    assert len(r2.ignored) == sum(k in ("zero_filled_remote", "stale_remote") for k in plan.values())
    # Pass 3: downloads still running (recent mtimes) are not synced yet (delay_s).
    for p, kind in plan.items():
        if kind == "pending_sync":
            writers[p].preallocate()
            writers[p].write_pieces(2)
            s.pending.append(writers[p])
    r3 = s.sync.sync_once(now)
    assert len(r3.deferred) == sum(k == "pending_sync" for k in plan.values()) and not r3.uploaded
    # After the last pass: finished downloads the sync has not seen yet.
    for p, kind in plan.items():
        if kind == "missing_remote":
            writers[p].finish()
            _set_mtime(writers[p].path, later)
    s.truth.update(plan)
    return s


@kind_and_real("drive.rate_limited")
def test_verify_classifies_fix_repairs_and_reverify_is_ok(setup: Setup) -> None:
    s = setup
    report = s.tmp / "first.jsonl"
    first = s.verify("--report", str(report))
    assert first.returncode == 1, first.stderr
    assert _statuses(report) == s.truth
    counts = {k: sum(v == k for v in s.truth.values()) for k in set(s.truth.values())}
    for status, n in counts.items():  # the summary table shows the same counts
        assert any(line.split()[:2] == [status, str(n)] for line in first.stdout.splitlines()), (status, first.stdout)

    before = s.remote_state()
    dry = s.verify("--fix", "--dry-run")
    assert dry.returncode == 1, dry.stderr
    fixable = sorted(p for p, k in s.truth.items() if k not in ("ok", "pending_sync"))
    assert sorted(line.rsplit(": ", 1)[1] for line in dry.stdout.splitlines() if line.startswith("would ")) == fixable
    assert s.remote_state() == before  # a dry run changes nothing

    fixed = s.verify("--fix", "--report", str(s.tmp / "fixed.jsonl"))
    assert fixed.returncode == 1, fixed.stderr  # pending files are still pending: reported, not touched
    assert sum(line.startswith("fixed: ") for line in fixed.stdout.splitlines()) == len(fixable), fixed.stdout
    assert "FAILED" not in fixed.stdout
    after_fix = _statuses(s.tmp / "fixed.jsonl")
    assert after_fix == {p: ("pending_sync" if k == "pending_sync" else "ok") for p, k in s.truth.items()}
    for p in fixable:  # one live copy per path: the bad one was removed after the verified upload
        live = [f for f in s.model.find_by_path("Downloads/" + p) if not s.model.is_trashed(f)]
        assert len(live) == 1 and live[0].size == (s.local / p).stat().st_size, p

    for w in s.pending:  # the downloads finish and the sync catches up
        w.finish()
    s.sync.sync_once(time.time() + 1000)
    final = s.verify("--report", str(s.tmp / "final.html"))
    assert final.returncode == 0, final.stdout + final.stderr
    assert set(_statuses_after(s)) == {"ok"}


def _statuses_after(s: Setup) -> list[str]:
    out = s.tmp / "final.jsonl"
    proc = s.verify("--report", str(out))
    assert proc.returncode == 0
    return list(_statuses(out).values())


def test_fix_leaves_local_problems_alone(setup: Setup, tmp_path: Path) -> None:
    """Downloads stopped part-way (zero tails) are local problems: --fix never uploads them."""
    s = setup
    content = random.Random(1).randbytes(200 * 1024)
    w = Aria2Writer(s.local / "stopped.iso", content, piece_bytes=8192, allocation="none")
    w.preallocate()
    with open(w.path, "r+b") as fh:  # first 40 KiB written, the rest still zeros
        fh.write(content[:40 * 1024] + bytes(len(content) - 40 * 1024))
    _set_mtime(w.path, time.time() - DAY)
    # A download the sync saw preallocated and that is still running: the remote is zeros (fixable),
    # but the local copy is not finished either, so --fix must not upload it.
    running = Aria2Writer(s.local / "running.iso", content, piece_bytes=8192, allocation="prealloc", seed=2)
    running.preallocate()
    _set_mtime(running.path, time.time() - DAY)
    s.sync.sync_once(time.time())
    with open(running.path, "r+b") as fh:
        fh.write(content[:40 * 1024])
    _set_mtime(running.path, time.time() - DAY + 60)
    before = {p: s.model.find_by_path(f"Downloads/{p}")[0] for p in ("stopped.iso", "running.iso")}
    proc = s.verify("--fix", "--report", str(tmp_path / "r.jsonl"))
    statuses = _statuses(tmp_path / "r.jsonl")
    assert statuses["stopped.iso"] == "zero_tail" and statuses["running.iso"] == "zero_filled_remote"
    fixed = [line for line in proc.stdout.splitlines() if line.startswith("fixed")]
    assert not any("stopped.iso" in line or "running.iso" in line for line in fixed)
    assert any(line.startswith("not fixed: running.iso: the local copy ends in") for line in proc.stdout.splitlines())
    for p, was in before.items():
        after = s.model.find_by_path(f"Downloads/{p}")
        assert [f.id for f in after] == [was.id] and after[0].md5 == was.md5
