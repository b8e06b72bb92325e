"""Issue #16 at test size, over real HTTP against the emulator: the parallel first walk (--checkers),
batched --dry-run lookups, and journal backups that upload only what changed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from world import World, summary_of

from driveferry.journal import Journal
from driveferry.journal.records import ItemState, PlannedItem
from driveferry.migrate.backup import JournalBackup
from driveferry.migrate.job import PlanProgress, run_migration
from driveferry.migrate.settings import MigrateSettings
from driveferry.providers.base import UploadMeta
from driveferry.providers.ops import resolve, walk

# 31 folders over three levels, 2 files in each, some empty folders: many listings, each small.
_FOLDERS = [f"Projects/f{i}" for i in range(6)] + [f"Projects/f{i}/s{j}" for i in range(6) for j in range(4)]
TREE: dict[str, Any] = {
    "seed": 16,
    "onedrive": {"files": [{"path": f"{d}/{n}.bin", "size": 100 + k} for k, d in enumerate(_FOLDERS)
                           for n in ("a", "b")] + [{"path": "Projects/top.txt", "size": "1K"}]},
    "gdrive": {"files": [{"path": f"Src/{d}/{n}.bin", "size": 7} for d in _FOLDERS for n in ("x", "y")]},
}
FILES = 2 * len(_FOLDERS) + 1
LIST_ROUTES = {"onedrive": "graph.children", "gdrive": "drive.files.list"}


def _listings(world: World, cloud: str) -> int:
    return int(world.counters()["requests"].get(LIST_ROUTES[cloud], 0))


@pytest.mark.parametrize("world", [TREE], indirect=True)
@pytest.mark.parametrize(("cloud", "top"), [("onedrive", "Projects"), ("gdrive", "Src/Projects")])
def test_parallel_walk_yields_the_sequential_set(world: World, cloud: str, top: str) -> None:
    provider = world.provider(cloud)
    root = resolve(provider, top)
    folders = 1 + len(_FOLDERS)
    before = _listings(world, cloud)
    sequential = [(w.rel_path, w.entry.id, w.depth) for w in walk(provider, root)]
    sequential_requests = _listings(world, cloud) - before
    before = _listings(world, cloud)
    parallel_walked = list(walk(provider, root, checkers=8))
    parallel_requests = _listings(world, cloud) - before
    parallel = [(w.rel_path, w.entry.id, w.depth) for w in parallel_walked]
    assert len(parallel) == len(set(parallel)) == len(sequential) == folders - 1 + (FILES if cloud == "onedrive"
                                                                                     else FILES - 1)
    assert set(parallel) == set(sequential)
    # one listing per folder either way (a discovery request on top is allowed for Drive's root lookup)
    assert parallel_requests == sequential_requests >= folders
    # each folder's items come together (plan.py's duplicate check and the namer rely on it)
    seen_parents: list[str] = []
    for w in parallel_walked:
        if not seen_parents or seen_parents[-1] != w.entry.parent_id:
            assert w.entry.parent_id not in seen_parents, w.rel_path
            seen_parents.append(w.entry.parent_id)
    # a walk stopped early leaves no listing running behind it
    it = walk(provider, root, checkers=4)
    next(it)
    it.close()


@pytest.mark.parametrize("world", [TREE], indirect=True)
@pytest.mark.parametrize("checkers", ["1", "8"])
def test_migrate_with_checkers_copies_everything(world: World, checkers: str) -> None:
    summary = summary_of(world.cli(*world.migrate_args("--json", "--checkers", checkers), check=True))
    assert summary["copied"] == FILES and summary["failed"] == 0, summary
    again = summary_of(world.cli(*world.migrate_args("--json", "--dry-run", "--checkers", checkers), check=True))
    assert again["copied"] == 0 and again["planned"] == FILES, again


@pytest.mark.parametrize("world", [TREE], indirect=True)
def test_checkers_out_of_range_is_a_one_line_error(world: World) -> None:
    proc = world.cli(*world.migrate_args("--checkers", "0"))
    assert proc.returncode == 2 and "--checkers must be between 1 and 64" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("world", [TREE], indirect=True)
def test_dry_run_batches_its_journal_lookups(world: World) -> None:
    world.cli(*world.migrate_args("--max-transfer", "1K"), check=False)  # some done, most pending
    settings = MigrateSettings(source="emu-onedrive:/Projects", destination="emu-gdrive:Archive",
                               journal=str(world.journal), dry_run=True, checkers=4)
    src, dst = world.provider("onedrive"), world.provider("gdrive")
    statements: list[str] = []
    with Journal.open(str(world.journal)) as journal:
        job = journal.find_job(settings.source, settings.destination)
        assert job is not None
        # the answer one lookup per item gives, computed first
        finished = {ItemState.DONE, ItemState.SKIPPED}
        copies = [w.rel_path for w in walk(src, resolve(src, "Projects"), include_folders=False)]
        expected = 0
        for path in copies:
            item = journal.find_item(job.id, path)
            expected += item is None or item.state not in finished
        assert 0 < expected < FILES
        engine = journal._db.engine
        sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        summary = run_migration(settings, src, "Projects", dst, "Archive", journal, PlanProgress(), None)
    assert summary.copied == expected and summary.planned == FILES
    item_queries = [s for s in statements if "FROM items" in s]
    assert len(item_queries) == 1, item_queries  # 63 paths: one batch


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: sorted(conn.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr) for name in tables}
    finally:
        conn.close()


def _backup_bytes(world: World) -> int:
    c = world.counters()["bytes_in"]
    return sum(v for k, v in c.items() if k in ("graph.upload.fragment", "graph.upload.simple"))


@pytest.mark.parametrize("world", [TREE], indirect=True)
def test_backup_uploads_deltas_and_restores_the_same_journal(world: World, tmp_path: Path) -> None:
    journal_path = tmp_path / "vm1" / "j.sqlite3"
    journal_path.parent.mkdir()
    with Journal.open(str(journal_path)) as journal:
        job = journal.get_or_create_job("a:/", "b:/")
        journal.plan_items(job.id, (PlannedItem(f"dir{i // 100}/file-{i:05d}.bin", f"id{i}", "file", i)
                                    for i in range(5000)))
    od = world.provider("onedrive")
    backup = JournalBackup(od, "Backups/journal", journal_path)
    before = _backup_bytes(world)
    base_name = backup.backup_now()
    assert base_name is not None and base_name.endswith(".sqlite3.gz")
    base_bytes = _backup_bytes(world) - before
    assert base_bytes == backup.uploaded_bytes > 0
    assert backup.backup_now() is None  # unchanged: nothing uploaded
    deltas = []
    for step in range(3):  # 20 completions per backup
        conn = sqlite3.connect(journal_path)
        with conn:
            conn.execute("UPDATE items SET state = 'done', bytes_done = size_bytes WHERE id BETWEEN ? AND ?",
                         (1 + 20 * step, 20 * (step + 1)))
        conn.close()
        before = _backup_bytes(world)
        name = backup.backup_now()
        assert name is not None and ".delta.gz" in name
        deltas.append(_backup_bytes(world) - before)
    assert all(0 < d < base_bytes / 5 for d in deltas), (deltas, base_bytes)
    assert backup.uploaded_bytes == base_bytes + sum(deltas)
    names = sorted(e.name for e in od.list(od.stat("Backups/journal")))
    assert len(names) == 4 and sum(".delta.gz" in n for n in names) == 3

    # the daily cost, as `status` reports it
    report = json.loads(world.cli("status", "--journal", str(journal_path), "--json", check=True).stdout)
    assert report["journal_backup"] == {"bytes_24h": backup.uploaded_bytes, "uploads_24h": 4}
    text = world.cli("status", "--journal", str(journal_path), check=True).stdout
    assert "journal backup: " in text and "in 4 uploads in the last 24 h" in text, text

    fresh = tmp_path / "vm2" / "j.sqlite3"
    last_delta = max(n for n in names if ".delta.gz" in n)
    assert JournalBackup(od, "Backups/journal", fresh).restore_if_missing() == last_delta
    assert _rows(fresh) == _rows(journal_path)

    # a damaged last delta: the state before it comes back (the first 40 done, not 60)
    od.delete(next(e for e in od.list(od.stat("Backups/journal")) if e.name == last_delta))
    session = od.begin_upload(od.stat("Backups/journal"), last_delta, 5, UploadMeta())
    session.send(0, b"junk!", True)
    older = tmp_path / "vm3" / "j.sqlite3"
    JournalBackup(od, "Backups/journal", older).restore_if_missing()
    conn = sqlite3.connect(older)
    done = conn.execute("SELECT count(*) FROM items WHERE state = 'done'").fetchone()[0]
    conn.close()
    assert done == 40, done
