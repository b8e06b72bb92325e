"""Local -> local migrations through the CLI: bytes, rerun, and a lost journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _migrate(src: Path, dst: Path, journal: Path, *extra: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-m", "driveferry.cli", "migrate", str(src), str(dst),
                           "--journal", str(journal), "--json", *extra], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_local_tree_copied_and_lost_journal_proven_by_bytes(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "a" / "b").mkdir(parents=True)
    files = {"a/one.bin": os.urandom(300_000), "a/b/two.bin": os.urandom(3 * 1024 * 1024 + 3), "empty": b""}
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    journal = tmp_path / "j.sqlite3"
    first = _migrate(src, dst, journal, "--chunk-size", "1M")
    assert first["copied"] == 3
    for rel, data in files.items():
        assert (dst / rel).read_bytes() == data
    journal.unlink()
    second = _migrate(src, dst, journal)
    if not hasattr(os, "listxattr"):
        pytest.skip("no xattrs here: provenance cannot be stored on local files")
    assert second["skipped"] == 3 and second["copied"] == 0  # proven by provenance and recomputed hashes
    (dst / "a" / "one.bin").write_bytes(b"tampered")  # a wrong copy is not taken for a good one
    journal.unlink()
    third = _migrate(src, dst, journal)
    assert third["copied"] == 1 and third["skipped"] == 2
    assert (dst / "a" / "one.bin").read_bytes() == files["a/one.bin"]
    assert sorted(p.name for p in (dst / "a").iterdir() if p.is_file()) == ["one.bin"]


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    for i in range(5):
        (src / "d" / f"f{i}.txt").write_bytes(b"x" * (i + 1))
    journal = tmp_path / "j.sqlite3"
    dry = _migrate(src, dst, journal, "--dry-run", "--exclude", "f4.txt")
    assert dry["copied"] == 4 and dry["filtered"] == 1 and dry["dry_run"] is True
    assert not dst.exists() and not journal.exists()
    _migrate(src, dst, journal, "--include", "f0.txt")
    again = _migrate(src, dst, journal, "--dry-run")
    assert again["copied"] == 4  # f0 is done in the journal; the other four would be copied
    assert sorted(p.name for p in (dst / "d").iterdir()) == ["f0.txt"]


def test_rerun_retries_failed_files(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "ok.txt").write_bytes(b"fine")
    (src / "blocked.txt").write_bytes(b"will fail")
    dst.mkdir()
    (dst / "blocked.txt").mkdir()  # a folder in the way: the upload of blocked.txt fails
    journal = tmp_path / "j.sqlite3"
    proc = subprocess.run([sys.executable, "-m", "driveferry.cli", "migrate", str(src), str(dst),
                           "--journal", str(journal), "--json"], capture_output=True, text=True)
    first = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 1 and first["failed"] == 1 and first["copied"] == 1
    (dst / "blocked.txt").rmdir()
    second = _migrate(src, dst, journal)
    assert second["copied"] == 1 and second["failed"] == 0
    assert (dst / "blocked.txt").read_bytes() == b"will fail"


def test_files_copied_but_not_yet_recorded_are_skipped_on_the_next_run(tmp_path: Path) -> None:
    """Workers record finished files a batch at a time. A crash before that write leaves copies on the
    destination that the journal still calls pending: the next run proves them by provenance and
    skips them, uploading nothing."""
    import sqlite3
    if not hasattr(os, "listxattr"):
        pytest.skip("no xattrs here: provenance cannot be stored on local files")
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    data = {f"d/f{i}.bin": os.urandom(1000 + i) for i in range(12)}
    for rel, content in data.items():
        (src / rel).write_bytes(content)
    journal = tmp_path / "j.sqlite3"
    assert _migrate(src, dst, journal)["copied"] == 12
    with sqlite3.connect(journal) as db:  # as if the process died before its last batch was recorded
        forgotten = db.execute("UPDATE items SET state = 'pending', dest_id = NULL, bytes_done = 0 "
                               "WHERE kind = 'file' AND path LIKE 'd/f1%'").rowcount
    assert forgotten == 3  # f1, f10, f11
    again = _migrate(src, dst, journal)
    assert (again["copied"], again["skipped"], again["bytes_uploaded"]) == (0, 3, 0)
    for rel, content in data.items():
        assert (dst / rel).read_bytes() == content
    assert len(list((dst / "d").iterdir())) == 12


def test_status_shows_what_a_worker_sent_even_when_it_finished_between_heartbeats(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "f.bin").write_bytes(os.urandom(200_000))
    journal = tmp_path / "j.sqlite3"
    _migrate(src, dst, journal, "--lease", "10m")  # heartbeats every 200 s: the run ends long before one
    proc = subprocess.run([sys.executable, "-m", "driveferry.cli", "status", "--journal", str(journal), "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (job,) = json.loads(proc.stdout)["jobs"]
    workers = job["workers"]
    assert [w["bytes"] for w in workers] == [200_000]
