"""`verify --fix` on remotes other than Drive: OneDrive (no duplicate names: the upload replaces the bad
file in place, quickXorHash, 320 KiB chunks) and a plain local folder (hashes computed, not reported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.server import Emulator
from realism_run import kind_and_real

OLD = 1_600_000_000


def _graph(emulator: Emulator) -> Any:
    return next(m for m in emulator.modules if getattr(m, "route_prefix", "") == "graph.").model


def _local_tree(root: Path) -> dict[str, bytes]:
    files = {"good.bin": os.urandom(5000), "zeros.bin": os.urandom(700_000), "stale.txt": b"new content!",
             "sub/missing.bin": os.urandom(1234)}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        os.utime(root / rel, (OLD + 100, OLD + 100))
    return files


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "driveferry.cli", "verify", *args, "-q"], capture_output=True,
                          text=True, env=env, timeout=120)


def _statuses(path: Path) -> dict[str, str]:
    return {json.loads(x)["path"]: json.loads(x)["status"] for x in path.read_text().splitlines()}


EXPECTED = {"good.bin": "ok", "zeros.bin": "zero_filled_remote", "stale.txt": "stale_remote",
            "sub/missing.bin": "missing_remote"}


def _fix_and_reverify(env: dict[str, str], local: Path, remote: str, tmp_path: Path) -> str:
    first = _run(env, str(local), remote, "--report", str(tmp_path / "1.jsonl"))
    assert first.returncode == 1 and _statuses(tmp_path / "1.jsonl") == EXPECTED, first.stdout + first.stderr
    fixed = _run(env, str(local), remote, "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    again = _run(env, str(local), remote, "--report", str(tmp_path / "2.jsonl"))
    assert again.returncode == 0 and set(_statuses(tmp_path / "2.jsonl").values()) == {"ok"}
    return fixed.stdout


@kind_and_real("graph.fragment_404")
def test_fix_on_onedrive_replaces_in_place(fresh_emulator: Emulator, tmp_path: Path) -> None:
    emulator = fresh_emulator
    local = tmp_path / "local"
    files = _local_tree(local)
    graph = _graph(emulator)
    top, _ = graph.create_folder(graph.root().id, f"fix-{tmp_path.name}", conflict="replace")
    modified = datetime.fromtimestamp(OLD, tz=UTC)
    graph.create_file(top.id, "good.bin", [files["good.bin"]], modified=modified)
    zeros = graph.create_file(top.id, "zeros.bin", [bytes(700_000)], modified=modified)
    graph.create_file(top.id, "stale.txt", [b"old content!"], modified=modified)
    config = tmp_path / "remotes.toml"
    config.write_text(remotes_toml(remote_sections(emulator.describe())))
    env = {**os.environ, "DRIVEFERRY_CONFIG": str(config), "DRIVEFERRY_HASH_CACHE": str(tmp_path / "c.sqlite3")}
    out = _fix_and_reverify(env, local, f"emu-onedrive:/{top.name}", tmp_path)
    assert out.count("fixed: ") == 3
    kept = graph.child(top.id, "zeros.bin")
    assert kept.id == zeros.id and kept.size == 700_000  # replaced in place: same item, new content


def test_fix_on_a_local_folder(tmp_path: Path) -> None:
    local, mirror = tmp_path / "local", tmp_path / "mirror"
    files = _local_tree(local)
    mirror.mkdir()
    for rel, data in (("good.bin", files["good.bin"]), ("zeros.bin", bytes(700_000)), ("stale.txt", b"old content!")):
        (mirror / rel).write_bytes(data)
        os.utime(mirror / rel, (OLD, OLD))
    env = {**os.environ, "DRIVEFERRY_HASH_CACHE": str(tmp_path / "c.sqlite3")}
    out = _fix_and_reverify(env, local, str(mirror), tmp_path)
    assert out.count("fixed: ") == 3
    assert all((mirror / rel).read_bytes() == data for rel, data in files.items())
    assert sorted(p.name for p in mirror.rglob("*") if p.is_file()) == ["good.bin", "missing.bin", "stale.txt",
                                                                        "zeros.bin"]


def test_fix_withholds_the_last_chunk_when_the_local_file_changed(tmp_path: Path) -> None:
    """The bytes streamed must hash to what the scan found; otherwise nothing is committed."""
    from driveferry.integrity.hashes import HashType
    from driveferry.providers.local import LocalProvider
    from driveferry.providers.ops import DirCache
    from driveferry.verify.classify import Status
    from driveferry.verify.fix import FixAction, apply_fix

    local, mirror = tmp_path / "local", tmp_path / "mirror"
    local.mkdir()
    mirror.mkdir()
    (local / "f.bin").write_bytes(os.urandom(3 * 65536 + 10))
    provider = LocalProvider(mirror)
    action = FixAction("f.bin", Status.MISSING_REMOTE, 3 * 65536 + 10, ())
    res = apply_fix(action, local, provider, DirCache(provider), HashType.SHA256, "0" * 64, {}, 65536)
    assert not res.ok and not res.uploaded and "no longer hash" in res.message
    assert list(mirror.iterdir()) == []  # no file, no partial left behind
    grown = apply_fix(FixAction("f.bin", Status.MISSING_REMOTE, 5, ()), local, provider, DirCache(provider),
                      HashType.SHA256, "0" * 64, {}, 65536)
    assert not grown.ok and "changed size" in grown.message
