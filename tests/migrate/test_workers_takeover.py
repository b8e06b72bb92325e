"""Taking over a dead worker's file: marked as such, and the destination folder is looked at afresh.

A worker killed right after the destination stored a small file, before the journal recorded it,
leaves the file on the destination and the item in progress under its expired lease. The worker that
takes it over must see that copy (and skip it) even if it listed the folder before the copy landed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from driveferry.journal import Journal
from driveferry.migrate.destination import Destination
from driveferry.migrate.journal_port import JobPort
from driveferry.providers.base import Entry, Kind
from driveferry.providers.local import LocalProvider

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "journal"))
from journal_helpers import FakeClock, files  # noqa: E402


@pytest.fixture()
def port(tmp_path: Path) -> Iterator[tuple[JobPort, FakeClock]]:
    clock = FakeClock()
    with Journal.open(str(tmp_path / "j.sqlite3"), clock=clock) as journal:
        job = journal.get_or_create_job("src:/", "dst:/")
        journal.plan_items(job.id, files(3))
        yield JobPort(journal, job.id, "run", "worker-b", ""), clock


def test_claim_marks_items_taken_over_from_an_expired_lease(port: tuple[JobPort, FakeClock]) -> None:
    jp, clock = port
    dead = jp.journal.claim(jp.job_id, "worker-a", 10, limit=2, kinds={"file"})
    assert len(dead) == 2
    clock.advance(11)  # worker-a died: its leases expire
    claimed = jp.claim("worker-b", 10, 8)
    assert {(c.rel_path, c.taken_over) for c in claimed} == {
        ("dir/f0000", True), ("dir/f0001", True), ("dir/f0002", False)}
    jp.release("worker-b")
    again = jp.claim("worker-b", 10, 8)  # released items are pending again: nobody was taken over
    assert not any(c.taken_over for c in again)


class CountingLocal(LocalProvider):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.listings = 0

    def list(self, folder: Entry) -> Iterator[Entry]:
        self.listings += 1
        return super().list(folder)


def test_fresh_prepare_sees_a_copy_made_after_the_listing(tmp_path: Path) -> None:
    (tmp_path / "dst" / "d").mkdir(parents=True)
    provider = CountingLocal(tmp_path / "dst")
    dest = Destination(provider, provider.root())
    source = Entry(id="s1", path="d/f.txt", name="f.txt", kind=Kind.FILE, size=3)
    _, _, _, taken = dest.prepare("d/f.txt", source)
    assert not taken
    (tmp_path / "dst" / "d" / "f.txt").write_bytes(b"abc")  # the dead worker's upload lands
    assert dest.prepare("d/f.txt", source)[3] is False  # the cached listing does not see it
    n = provider.listings
    assert dest.prepare("d/f.txt", source, fresh=True)[3] is True
    assert provider.listings == n + 1
