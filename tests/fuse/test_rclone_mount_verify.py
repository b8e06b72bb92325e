"""`driveferry verify` and `doctor` on a real FUSE mount: `rclone mount` of the emulated Drive, written by aria2c.

The mount has a write-back cache (rclone_mount.RcloneMount), so what it shows and what Drive holds can
part, as on Colab's DriveFS. Real aria2c downloads into it with preallocation; Drive ends up with:

  good-1.iso, good-2.iso, nested/good-3.iso   downloaded whole and uploaded by the mount     -> ok
  zeros.iso     aria2 preallocated it and the server stalled: the mount uploaded the zeros; the finished
                re-download never reached Drive (Drive refused uploads)              -> zero_filled_remote
  changed.mkv   re-downloaded with new bytes of the same size; Drive refused the upload but took the new
                mtime that rclone sets through files.update, so Drive is not older  -> content_mismatch
  stale.mkv     the same, with files.update refused too: Drive keeps the old bytes and the old
                modifiedTime                                                          -> stale_remote

Drive's refusals are the emulator's fault plan (403 storageQuotaExceeded on `drive.upload.*`, then 503
on `drive.files.update` as well): rclone keeps such files in its cache and retries them (vfs/vfs.md: "If an upload fails it
will be retried at exponentially increasing intervals up to 1 minute"), which is the state of a mount
that has not synced. The expected set is checked first against the bytes themselves (read through the
mount, and from the emulator's blob store), then verify must name exactly that set, with its defaults
(hash cache on, 15-minute grace: aria2 stamps the server's Last-Modified, hours old). rclone's inode
numbers are 64-bit path hashes and a queued file's mtime moves while it is open: both once broke verify.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from rclone_env import RcloneEnv
from rclone_mount import RcloneMount, SourceServer, aria2, fuse_tools_or_skip, wait_for

from driveferry.emulator.drive.models import DriveModel
from driveferry.emulator.drive.routes import drive_model
from driveferry.emulator.remotes import remote_sections, remotes_toml

HOUR_S = 3600
SYNC_TIMEOUT_S = 60
CLI_TIMEOUT_S = 180
GOOD = ("good-1.iso", "good-2.iso", "nested/good-3.iso")
EXPECTED = {"good-1.iso": "ok", "good-2.iso": "ok", "nested/good-3.iso": "ok",
            "zeros.iso": "zero_filled_remote", "changed.mkv": "content_mismatch", "stale.mkv": "stale_remote"}


def _bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _drive_files(model: DriveModel, folder_id: str, prefix: str = "") -> dict[str, tuple[bytes, str]]:
    """(stored bytes, modifiedTime) of every untrashed file under the folder, by relative path."""
    out: dict[str, tuple[bytes, str]] = {}
    for f in model.children(folder_id):
        if model.is_trashed(f):
            continue
        if f.is_folder:
            out.update(_drive_files(model, f.id, f"{prefix}{f.name}/"))
        else:
            blob = model.blob_path(f)
            out[f"{prefix}{f.name}"] = (blob.read_bytes() if blob is not None else b"", f.modified)
    return out


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))


# Drive full: 403 storageQuotaExceeded, which no client retries (api-notes 5.2, from rclone PR #6810;
# rclone's drive shouldRetry retries only 5xx and the rate-limit reasons), so rclone's VFS cache keeps the
# file and retries it later on its own schedule. Google's Go client would retry a 503 upload for ~32 s first.
DRIVE_FULL = {"status": 403, "code": "storageQuotaExceeded",
              "message": "The user's Drive storage quota has been exceeded."}
# A metadata update (rclone sets a file's mtime with files.update) failing with Drive's 503 backendError.
BACKEND_ERROR = {"status": 503, "code": "backendError", "message": "Backend Error"}


def _faults(env: RcloneEnv, *rules: tuple[str, str, dict[str, object]]) -> None:
    """Drive answers every (route pattern, method) given with the given error (the emulator's fault plan)."""
    plan = [{"kind": "status", "route": route, "method": method, **error} for route, method, error in rules]
    r = env.http().put(env.emu.base_url + "/_emulator/faults", json={"seed": 1, "rules": plan}, timeout=30)
    r.raise_for_status()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "driveferry.cli", *args], capture_output=True, text=True,
                          env=env, timeout=CLI_TIMEOUT_S, check=False)


def test_verify_names_every_file_drive_holds_differently_and_doctor_names_rclone(tmp_path: Path) -> None:
    fuse_tools_or_skip()
    now = time.time()
    old, older = now - 1 * HOUR_S, now - 3 * HOUR_S
    final = {"good-1.iso": _bytes(1_500_000, 1), "good-2.iso": _bytes(700_000, 2),
             "nested/good-3.iso": _bytes(300_000, 3), "zeros.iso": _bytes(900_000, 4),
             "changed.mkv": _bytes(600_000, 5), "stale.mkv": _bytes(500_000, 6)}
    first = {"changed.mkv": _bytes(600_000, 15), "stale.mkv": _bytes(500_000, 16)}
    with RcloneEnv(tmp_path / "rclone") as env, SourceServer() as source:
        model = drive_model(env.emu)
        folder = model.create_folder("dl", env.drive_folder_id)
        with RcloneMount(env, "emudrive:dl", tmp_path / "mnt", tmp_path) as mnt:
            def fetch(rel: str, data: bytes, mtime_s: float, *, stall: bool = False) -> int:
                url = source.put(rel, data, mtime_s, stall=stall)
                parent, name = (mnt.path / rel).parent, (mnt.path / rel).name
                parent.mkdir(parents=True, exist_ok=True)
                done = aria2(parent, url, name)
                assert stall or done.returncode == 0, (rel, done.stdout, done.stderr, mnt.log_tail())
                return done.returncode

            def drive() -> dict[str, tuple[bytes, str]]:
                return _drive_files(model, folder.id)

            # Phase 1: Drive accepts everything.
            for rel in GOOD:
                fetch(rel, final[rel], older)
            for rel, data in first.items():
                fetch(rel, data, older)
            assert fetch("zeros.iso", final["zeros.iso"], older, stall=True) != 0  # gave up: zeros left
            assert (mnt.path / "zeros.iso").read_bytes() == bytes(len(final["zeros.iso"]))
            # aria2's control file, removed before the mount's write-back delay ends; the next run starts afresh
            (mnt.path / "zeros.iso.aria2").unlink()
            synced = {**{rel: final[rel] for rel in GOOD}, **first, "zeros.iso": bytes(len(final["zeros.iso"]))}
            wait_for("the mount to upload every file", lambda: {k: v[0] for k, v in drive().items()} == synced,
                     SYNC_TIMEOUT_S, mnt.log_tail)
            wait_for("the first versions' mtimes on Drive",
                     lambda: all(drive()[rel][1].startswith(_rfc3339(older)) for rel in first), SYNC_TIMEOUT_S,
                     mnt.log_tail)

            # Phase 2: Drive is full and refuses uploads; rclone still sets the new mtime through files.update.
            _faults(env, ("drive.upload.*", "*", DRIVE_FULL))
            fetch("changed.mkv", final["changed.mkv"], old)
            wait_for("changed.mkv's new mtime on Drive", lambda: drive()["changed.mkv"][1].startswith(_rfc3339(old)),
                     SYNC_TIMEOUT_S, mnt.log_tail)
            # Phase 3: Drive refuses uploads and metadata updates.
            _faults(env, ("drive.upload.*", "*", DRIVE_FULL), ("drive.files.update", "PATCH", BACKEND_ERROR))
            fetch("stale.mkv", final["stale.mkv"], old)
            fetch("zeros.iso", final["zeros.iso"], older)
            wait_for("the mount's failed uploads", lambda: all(
                f"{rel}: vfs cache: failed to upload" in mnt.log_tail(10**7) for rel in ("zeros.iso", "stale.mkv")),
                SYNC_TIMEOUT_S, mnt.log_tail)

            # The truth, from the bytes: the mount shows every final version; Drive differs on three.
            assert sorted(str(p.relative_to(mnt.path)) for p in mnt.path.rglob("*") if p.is_file()) == sorted(final)
            shown = {rel: (mnt.path / rel).read_bytes() for rel in final}
            assert shown == final
            held = drive()
            assert sorted(held) == sorted(final)
            differ = {rel for rel in final if held[rel][0] != shown[rel]}
            assert differ == {rel for rel, status in EXPECTED.items() if status != "ok"}
            assert held["zeros.iso"][0] == bytes(len(final["zeros.iso"]))
            assert held["stale.mkv"][0] == first["stale.mkv"] and held["changed.mkv"][0] == first["changed.mkv"]

            # rclone's inode numbers are 64-bit hashes (the same path gets the same number): some are above
            # 2**63, which an SQLite INTEGER cannot hold, so the hash cache below must store them anyway.
            inodes = {rel: os.stat(mnt.path / rel).st_ino for rel in final}
            assert max(inodes.values()) >= 2**63, inodes

            config = tmp_path / "remotes.toml"
            config.write_text(remotes_toml(remote_sections(env.emu.describe())))
            cache = tmp_path / "hashcache.sqlite3"
            cli_env = {**os.environ, "DRIVEFERRY_CONFIG": str(config), "DRIVEFERRY_HASH_CACHE": str(cache)}
            cached: list[list[tuple[int, int, int, int, int]]] = []
            # the second run answers from the hash cache: no row is written again (once broken by the
            # measured hash speeds picking SHA-1 in one run and SHA-256 in the other: test_verify_cache_choice)
            for run in (1, 2):
                report = tmp_path / f"verify-{run}.jsonl"
                proc = _cli(cli_env, "verify", str(mnt.path), "emu-gdrive:rclone-root/dl", "-q",
                            "--report", str(report))
                assert proc.returncode == 1, (proc.stdout, proc.stderr)
                assert "Traceback" not in proc.stderr
                rows = [json.loads(line) for line in report.read_text().splitlines()]
                assert {r["path"]: r["status"] for r in rows} == EXPECTED, proc.stdout
                with sqlite3.connect(cache) as db:
                    cached.append(sorted(db.execute(
                        "SELECT inode, size, mtime_ns, ctime_ns, recorded_ns FROM files").fetchall()))
            assert len(cached[0]) == len(final) and cached[1] == cached[0], (cached, inodes)
            assert any(row[0] < 0 for row in cached[0])  # stored as signed 64-bit

            doctor = _cli(cli_env, "doctor", str(mnt.path))
            assert doctor.returncode == 1, (doctor.stdout, doctor.stderr)
            mount_line = next(line for line in doctor.stdout.splitlines() if " mount " in line)
            assert mount_line.startswith("WARN") and "rclone mount (fuse.rclone, emudrive:dl at" in mount_line
            assert "Google" not in mount_line and "Colab" not in mount_line
            _faults(env)
