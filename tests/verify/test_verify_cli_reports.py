"""`verify LOCAL_DIR REMOTE:PATH` outputs: JSONL and CSV reports, an md5sum-compatible manifest that the
coreutils `*sum -c` accepts, progress on stderr (off with -q), and the hash cache being written."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from driveferry.emulator.drive.routes import drive_model
from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.server import Emulator
from driveferry.verify.report import FIELDS

OLD = 1_600_000_000


@pytest.fixture()
def tree(emulator: Emulator, tmp_path: Path) -> tuple[Path, str, dict[str, str]]:
    model = drive_model(emulator)
    top = model.create_folder(f"rep-{tmp_path.name}")
    sub = model.create_folder("sub dir", top.id)
    local = tmp_path / "local"
    (local / "sub dir").mkdir(parents=True)
    files = {"a.txt": b"alpha\n" * 100, "sub dir/b.bin": os.urandom(3000), "sub dir/c.bin": os.urandom(2000)}
    for rel, data in files.items():
        (local / rel).write_bytes(data)
        os.utime(local / rel, (OLD, OLD))
    model.create_file("a.txt", [files["a.txt"]], top.id)
    model.create_file("b.bin", [files["sub dir/b.bin"]], sub.id)
    model.create_file("c.bin", [bytes(2000)], sub.id)  # zero-filled placeholder
    config = tmp_path / "remotes.toml"
    config.write_text(remotes_toml(remote_sections(emulator.describe())))
    env = {**os.environ, "DRIVEFERRY_CONFIG": str(config), "DRIVEFERRY_HASH_CACHE": str(tmp_path / "c.sqlite3")}
    return local, f"emu-gdrive:{top.name}", env


def _verify(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "driveferry.cli", "verify", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_jsonl_csv_and_manifest(tree: tuple[Path, str, dict[str, str]], tmp_path: Path) -> None:
    local, remote, env = tree
    manifest = tmp_path / "SUMS"
    proc = _verify(env, str(local), remote, "-q", "--report", str(tmp_path / "r.jsonl"), "--manifest", str(manifest))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""  # -q: no progress bar
    assert any(line.split()[:3] == ["zero_filled_remote", "sub", "dir/c.bin:"] for line in proc.stdout.splitlines())
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert {r["path"]: r["status"] for r in rows} == {"a.txt": "ok", "sub dir/b.bin": "ok",
                                                      "sub dir/c.bin": "zero_filled_remote"}
    assert all(set(r) == set(FIELDS) for r in rows)
    csv_proc = _verify(env, str(local), remote, "-q", "--report", str(tmp_path / "r.csv"))
    assert csv_proc.returncode == 1
    with open(tmp_path / "r.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["status"] for r in table] == ["ok", "ok", "zero_filled_remote"]
    kind = rows[0]["hash_type"]
    tool = shutil.which(f"{kind}sum")
    lines = manifest.read_text().splitlines()
    assert len(lines) == 3 and all(line.split("  ", 1)[1] in {"a.txt", "sub dir/b.bin", "sub dir/c.bin"}
                                   for line in lines)
    if tool:  # coreutils checks every local file against the manifest
        check = subprocess.run([tool, "-c", str(manifest)], cwd=local, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_progress_on_stderr_cache_written_rerun_sees_deletion(tree: tuple[Path, str, dict[str, str]], tmp_path: Path) -> None:
    local, remote, env = tree
    first = _verify(env, str(local), remote)
    assert first.returncode == 1
    assert "hashing" not in first.stderr  # stderr is a pipe, not a terminal: no bar (a log would fill with it)
    from driveferry.verify.cache import HashCache
    with HashCache(env["DRIVEFERRY_HASH_CACHE"]) as cache:
        assert len(cache) == 3  # the local hashes are kept for the next run
    (local / "sub dir" / "c.bin").unlink()  # the placeholder's local twin is gone: remote-only now
    second = _verify(env, str(local), remote, "-q", "--report", str(tmp_path / "2.jsonl"))
    statuses = {json.loads(x)["path"]: json.loads(x)["status"] for x in (tmp_path / "2.jsonl").read_text().splitlines()}
    assert statuses["sub dir/c.bin"] == "missing_local" and second.returncode == 1
