"""verify --exclude: the paths migrate --exclude left out are left out of the proof too (globs.py)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from driveferry.cli import main


def test_a_tree_migrated_with_exclude_verifies_clean_with_the_same_patterns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    dst.mkdir()
    files = {"keep.txt": b"keep", "sub/deep.bin": os.urandom(5000), "skip.tmp": b"tmp", "sub/~$lock.docx": b"lk"}
    old = time.time() - 3600  # outside verify's grace period: nothing is pending_sync
    for rel, data in files.items():
        (src / rel).write_bytes(data)
        os.utime(src / rel, (old, old))
    (tmp_path / "remotes.toml").write_text(f'[remotes.dst]\ntype = "local"\nroot = "{dst}"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIVEFERRY_CONFIG", str(tmp_path / "remotes.toml"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    patterns = ["--exclude", "*.tmp", "--exclude", "~$*"]
    assert main(["migrate", "src", "dst:", "--journal", "j.sqlite3", "-q", *patterns]) == 0
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()) == ["keep.txt", "sub/deep.bin"]
    capsys.readouterr()

    assert main(["verify", "src", "dst:", "-q", "--report", "all.jsonl"]) == 1  # without: two are missing
    missing = {r["path"] for r in map(json.loads, Path("all.jsonl").read_text().splitlines())
               if r["status"] == "missing_remote"}
    assert missing == {"skip.tmp", "sub/~$lock.docx"}

    assert main(["verify", "src", "dst:", "-q", "--report", "excluded.jsonl", *patterns]) == 0
    rows = [json.loads(line) for line in Path("excluded.jsonl").read_text().splitlines()]
    assert sorted((r["path"], r["status"]) for r in rows) == [("keep.txt", "ok"), ("sub/deep.bin", "ok")]
