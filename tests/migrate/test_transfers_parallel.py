"""`--transfers N` means N files moving at once: large files must spread over every transfer thread.

A worker once claimed a batch, kept one large file and handed the others back; threads that claimed
in between found nothing, concluded the run was over and quit, so large files went one at a time.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from driveferry.journal import Journal
from driveferry.migrate.job import PlanProgress, run_migration
from driveferry.migrate.settings import build_settings
from driveferry.providers.local import LocalProvider

CHUNK = 256 * 1024


class Rendezvous(PlanProgress):
    """Each file start waits until `n` files have started: it only completes if n run at once."""

    def __init__(self, n: int) -> None:
        self.barrier = threading.Barrier(n, timeout=20)
        self.started: list[str] = []
        self.broken = False

    def file_started(self, path: str, size: int, resumed_from: int) -> None:
        self.started.append(path)
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            self.broken = True


def test_large_files_move_on_every_transfer_at_once(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "big").mkdir(parents=True)
    dst.mkdir()
    data = {f"big/f{i}.bin": os.urandom(3 * CHUNK + i) for i in range(4)}  # four multi-chunk files
    for rel, content in data.items():
        (src / rel).write_bytes(content)
    settings = build_settings({"source": str(src), "destination": str(dst), "journal": str(tmp_path / "j.sqlite3"),
                               "transfers": 4, "chunk_size": str(CHUNK)})
    progress = Rendezvous(4)
    with Journal.open(settings.journal) as journal:
        summary = run_migration(settings, LocalProvider(src), "", LocalProvider(dst), "", journal, progress, None)
    assert not progress.broken, f"only {len(progress.started)} of 4 files were moving at once"
    assert summary.copied == 4 and summary.failed == 0
    for rel, content in data.items():
        assert (dst / rel).read_bytes() == content


def test_claim_batches_are_bounded_by_bytes(tmp_path: Path) -> None:
    from driveferry.journal.records import PlannedItem
    with Journal.open(str(tmp_path / "j.sqlite3")) as journal:
        job = journal.get_or_create_job("s", "d")
        sizes = [10, 10, 500, 10, 10, 10, 10, 10, 10]
        journal.plan_items(job.id, [PlannedItem(f"f{i}", f"id{i}", "file", size) for i, size in enumerate(sizes)])
        batches = []
        while items := journal.claim(job.id, "w", 60, 4, kinds={"file"}, max_bytes=100):
            batches.append([i.size_bytes for i in items])
        # in order; a large one comes alone; a batch stops before the item that would exceed the bound
        assert batches == [[10, 10], [500], [10, 10, 10, 10], [10, 10]]
