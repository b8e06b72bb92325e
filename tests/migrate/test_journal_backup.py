"""`migrate --journal-backup`: snapshots of the SQLite journal on a remote, and a lost VM carrying on."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from world import World, drive_tree, read_all, summary_of

from driveferry.errors import JournalError, NotFoundError
from driveferry.journal import Journal
from driveferry.journal import backup as files
from driveferry.migrate.backup import KEEP, JournalBackup
from driveferry.providers.base import UploadMeta
from realism_run import kind_and_real

CHUNK = 1280 * 1024
LARGE = 12 * CHUNK + 999
# On the other cloud, so that Drive's byte counters hold the migrated files only.
BACKUP = "emu-onedrive:Backups/journal"

TREE: dict[str, Any] = {
    "seed": 31,
    "onedrive": {
        "files": [{"path": f"Projects/big-{i}.bin", "size": LARGE} for i in range(3)]
        + [{"path": "Projects/notes.txt", "size": "3K", "content": "text"}],
    },
}


def _snapshots(world: World) -> list[str]:
    od = world.provider("onedrive")
    try:
        folder = od.stat("Backups/journal")
    except NotFoundError:
        return []
    return sorted((e.name for e in od.list(folder)), reverse=True)


def _bases(world: World) -> list[str]:
    """The full bases among the backup files (the rest are deltas on them), newest first."""
    return sorted((n for n in _snapshots(world) if ".sqlite3" in n), reverse=True)


def _in_flight(journal: Path) -> str | None:
    """The path of a large file in progress in the local journal, 2 chunks in and 5 or more to go."""
    try:
        conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT path FROM items WHERE state = 'in_progress' AND committed_offset "
                               "BETWEEN ? AND ?", (2 * CHUNK, LARGE - 5 * CHUNK)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


@pytest.mark.parametrize("world", [TREE], indirect=True)
@kind_and_real("graph.fragment_404", "graph.throttled")
def test_lost_vm_resumes_from_backed_up_journal(world: World, tmp_path: Path) -> None:
    expected = world.expected()
    total = sum(len(d) for d in expected.values())
    world.control("PUT", "/faults", {"seed": 1, "rules": [
        # slow enough that a backup snapshot (itself throttled under the realism profile) lands while a
        # large file is still in its window: 6 chunks x 300 ms
        {"kind": "latency", "route": "drive.upload.chunk", "latency_ms": 300, "rate": 1.0}]})
    vm1 = tmp_path / "vm1"
    journal1 = vm1 / "journal.sqlite3"
    args = [sys.executable, "-m", "driveferry.cli", "migrate", "emu-onedrive:/Projects", "emu-gdrive:Archive",
            "--journal", str(journal1), "-q", "--chunk-size", "1280K", "--transfers", "1",
            "--journal-backup", BACKUP, "--journal-backup-every", "1s"]
    env = {**os.environ, "DRIVEFERRY_CONFIG": str(world.config)}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Kill once a snapshot taken while a large file was 2+ chunks in has been uploaded, with that
        # file still in flight: the snapshot holds its upload session.
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            path = _in_flight(journal1)
            if path is None:
                time.sleep(0.02)
                continue
            before = _snapshots(world)[:1]
            while proc.poll() is None and _snapshots(world)[:1] == before and time.monotonic() < deadline:
                time.sleep(0.05)
            if _in_flight(journal1) == path:
                break
        assert proc.poll() is None, "the migration finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    shutil.rmtree(vm1)  # the VM and its disk are gone
    sent_before = world.upload_bytes()
    assert 0 < sent_before < total

    vm2 = tmp_path / "vm2"
    again = world.cli("migrate", "emu-onedrive:/Projects", "emu-gdrive:Archive", "--journal",
                      str(vm2 / "journal.sqlite3"), "--json", "--chunk-size", "1280K",
                      "--journal-backup", BACKUP, check=True)
    summary = summary_of(again)
    assert summary["failed"] == 0
    # Restored, not started over: the restored journal knew the run before the kill.
    with Journal.open(str(vm2 / "journal.sqlite3")) as j:
        assert len(j.runs(j.jobs()[0].id)) == 2
    assert summary["resumed"] >= 1, summary

    tree = drive_tree(world)
    gd = world.provider("gdrive")
    assert sorted(tree) == sorted(expected)
    archive = gd.stat("Archive")
    assert gd.duplicates(archive) == {}
    for path, data in expected.items():
        assert read_all(gd, tree[path][0]) == data, path
    # the file in flight continued from its committed offset: at most the chunk in flight went twice
    assert world.upload_bytes() <= total + CHUNK, (world.upload_bytes(), total)
    assert len(_bases(world)) == KEEP


def test_snapshot_restore_roundtrip_and_damage(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite3"
    with Journal.open(str(journal)) as j:
        job = j.get_or_create_job("a:/", "b:/")
        j.start_run(job.id, "w")
        snap = files.snapshot(journal, tmp_path)  # while the journal is open
    assert snap.sha256 == files.file_sha256(snap.path)
    assert not Path(f"{snap.path}-wal").exists()
    target = tmp_path / "restored" / "j.sqlite3"
    target.parent.mkdir()
    Path(f"{target}-wal").write_bytes(b"stale")  # a left-over WAL must not be replayed onto it
    bad = tmp_path / "bad.sqlite3"
    shutil.copy(snap.path, bad)
    with pytest.raises(JournalError, match="SHA-256"):
        files.restore(bad, target, "0" * 64)
    assert not target.exists()
    files.restore(snap.path, target, snap.sha256)
    assert not Path(f"{target}-wal").exists()
    with Journal.open(str(target)) as j:
        assert [x.source_spec for x in j.jobs()] == ["a:/"]
    with pytest.raises(FileExistsError):
        files.restore(bad, target, None)


@pytest.mark.parametrize("world", [TREE], indirect=True)
@kind_and_real("graph.fragment_404", "graph.throttled")
def test_backup_at_exit_keeps_newest_two_and_skips_damaged(world: World, tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite3"
    base = ["migrate", "emu-onedrive:/Projects", "emu-gdrive:Archive", "--journal", str(journal), "-q",
            "--journal-backup", BACKUP]
    world.cli(*base, "--max-transfer", "1M", check=False)  # a quota stop still backs up at exit
    assert len(_bases(world)) == 1
    world.cli(*base, check=True)
    world.cli(*base, check=True)
    names = _bases(world)
    assert len(names) == KEEP

    # The newest snapshot is damaged in storage: a fresh VM falls back to the one before.
    od = world.provider("onedrive")
    folder = od.stat("Backups/journal")
    newest = next(e for e in od.list(folder) if e.name == names[0])
    od.delete(newest)
    session = od.begin_upload(folder, names[0], 5, UploadMeta())
    session.send(0, b"junk!", True)
    fresh = tmp_path / "fresh" / "j.sqlite3"
    backup = JournalBackup(od, "Backups/journal", fresh)
    assert backup.restore_if_missing() == names[1]
    with Journal.open(str(fresh)) as j:
        assert len(j.runs(j.jobs()[0].id)) == 2
