"""Schema 4: the running item totals (journal/totals.py) equal a recount of the items after every kind
of write a migration makes, on SQLite and on PostgreSQL, including several threads writing at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from driveferry.journal import Journal, PlannedItem
from driveferry.journal import schema as t
from driveferry.journal.records import ItemState, StateTotal


def _recount(journal: Journal, job_id: int, *, files_only: bool) -> dict[ItemState, StateTotal]:
    c = t.items.c
    query = (sa.select(c.state, sa.func.count(), sa.func.coalesce(sa.func.sum(c.size_bytes), 0),
                       sa.func.coalesce(sa.func.sum(c.bytes_done), 0)).where(c.job_id == job_id).group_by(c.state))
    if files_only:
        query = query.where(c.kind != "folder")
    out = {s: StateTotal() for s in ItemState}
    with journal._db.read() as conn:
        for state, n, size, done in conn.execute(query):
            out[ItemState(state)] = StateTotal(int(n), int(size), int(done))
    return out


def _unhashed(journal: Journal, job_id: int) -> int:
    c = t.items.c
    with journal._db.read() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).where(
            c.job_id == job_id, c.state == "done", c.kind != "folder", c.dest_hashes == "{}")) or 0)


def _agree(journal: Journal, job_id: int) -> None:
    for files_only in (False, True):
        assert journal.counts(job_id, files_only=files_only) == _recount(journal, job_id, files_only=files_only)
    assert journal.count_unhashed_done(job_id) == _unhashed(journal, job_id)


def test_totals_follow_every_write(journal: Journal) -> None:
    job = journal.get_or_create_job("src", "dst")
    other = journal.get_or_create_job("src", "other")  # another job's items never count here
    journal.plan_items(other.id, [PlannedItem("x.bin", "id-x", "file", 99)])
    items = [PlannedItem(f"f{i}.bin", f"id-{i}", "file", 100 * i) for i in range(8)]
    journal.plan_items(job.id, [*items, PlannedItem("d", "id-d", "folder", None), PlannedItem("n", "id-n", "file")])
    _agree(journal, job.id)
    claimed = journal.claim(job.id, "w1", 60, limit=6)
    journal.checkpoint(claimed[0].id, "w1", "tok", 50)
    _agree(journal, job.id)
    journal.complete(claimed[0].id, "dest-0", {"md5": "aa"}, claimed[0].size_bytes or 0)
    journal.complete(claimed[1].id, "dest-1", {}, claimed[1].size_bytes or 0)  # done, nothing proved
    journal.fail(claimed[2].id, "transient", "503", retryable=True, worker_id="w1")
    journal.fail(claimed[3].id, "permanent", "403", retryable=False, worker_id="w1")
    journal.mark(claimed[4].id, ItemState.SKIPPED, "excluded", worker_id="w1")
    _agree(journal, job.id)
    assert journal.count_unhashed_done(job.id) == 1
    journal.release("w1")
    journal.requeue(job.id)
    # a changed source re-plans a done item (new size: pending again)
    journal.plan_items(job.id, [PlannedItem("f0.bin", "id-0", "file", 7)])
    _agree(journal, job.id)
    assert journal.counts(job.id)[ItemState.DONE].items == 1


def test_totals_agree_after_workers_write_at_once(journal: Journal) -> None:
    job = journal.get_or_create_job("src", "dst")
    journal.plan_items(job.id, [PlannedItem(f"f{i}.bin", f"id-{i}", "file", i) for i in range(120)])

    def worker(n: int) -> None:
        name = f"w{n}"
        while batch := journal.claim(job.id, name, 60, limit=3):
            for k, item in enumerate(batch):
                if item.id % 7 == 0 and item.attempts == 0:
                    journal.fail(item.id, "transient", "503", retryable=True, worker_id=name)
                else:
                    journal.checkpoint(item.id, name, "tok", (item.size_bytes or 0) // 2)
                    journal.complete(item.id, f"dest-{item.id}", {"md5": "00"} if k else {}, item.size_bytes or 0)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(worker, range(4)))
    _agree(journal, job.id)
    assert journal.counts(job.id)[ItemState.DONE].items == 120
