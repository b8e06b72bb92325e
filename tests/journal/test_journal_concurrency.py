"""Several workers on one job, each with its own connection pool (threads) or its own process."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

from journal_helpers import FakeClock, files

from driveferry.journal import ItemState, Journal

N_ITEMS = 60
WORKERS = ("w1", "w2", "w3")


def _work(url: str, job_id: int, worker_id: str, start: Any) -> list[int]:
    """Open a journal, wait for the others, then claim and finish items until none is left.

    Returns the ids this worker finished. The checkpoint would raise LeaseLostError if another
    worker had claimed the item meanwhile.
    """
    done: list[int] = []
    with Journal.open(url) as journal:
        start.wait()
        while batch := journal.claim(job_id, worker_id, lease_s=300, limit=2):
            for item in batch:
                journal.checkpoint(item.id, worker_id, f"tok-{worker_id}", 1)
                time.sleep(0.002)  # the "upload": lets the other workers interleave
                journal.complete(item.id, f"dest-{item.id}", {"md5": "00"}, 100)
                done.append(item.id)
    return done


def _process_main(url: str, job_id: int, worker_id: str, start: Any, out: Any) -> None:
    out.put((worker_id, _work(url, job_id, worker_id, start)))


def _check(journal: Journal, job_id: int, finished: dict[str, list[int]]) -> None:
    ids = [i for batch in finished.values() for i in batch]
    assert len(ids) == len(set(ids)), "an item was claimed by two workers"
    assert sorted(ids) == sorted(i.id for i in journal.iter_items(job_id))
    assert journal.counts(job_id)[ItemState.DONE].items == N_ITEMS
    assert sum(1 for batch in finished.values() if batch) >= 2, "the work was not shared at all"


def test_threads_never_claim_the_same_item(journal_url: str, journal: Journal) -> None:
    job = journal.get_or_create_job("src", "dst")
    journal.plan_items(job.id, files(N_ITEMS))
    finished: dict[str, list[int]] = {}
    start = threading.Barrier(len(WORKERS))

    def run(worker_id: str) -> None:
        finished[worker_id] = _work(journal_url, job.id, worker_id, start)

    threads = [threading.Thread(target=run, args=(w,)) for w in WORKERS]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert set(finished) == set(WORKERS), "a worker thread died"
    _check(journal, job.id, finished)


def test_processes_never_claim_the_same_item(journal_url: str, journal: Journal) -> None:
    job = journal.get_or_create_job("src", "dst")
    journal.plan_items(job.id, files(N_ITEMS))
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(len(WORKERS))
    out = ctx.Queue()
    procs = [ctx.Process(target=_process_main, args=(journal_url, job.id, w, start, out)) for w in WORKERS]
    for p in procs:
        p.start()
    finished = dict(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    _check(journal, job.id, finished)


def test_expired_leases_are_taken_over_exactly_once(journal_url: str, journal: Journal,
                                                    clock: FakeClock) -> None:
    """A worker dies holding items mid-upload; two survivors take each over once, with its session."""
    job = journal.get_or_create_job("src", "dst")
    journal.plan_items(job.id, files(10))
    dead = journal.claim(job.id, "dead", lease_s=60, limit=10)
    for item in dead:
        journal.checkpoint(item.id, "dead", f"tok-{item.id}", 1000 + item.id)
    clock.advance(61)
    taken: dict[str, list[tuple[int, str | None, int | None]]] = {}
    start = threading.Barrier(2)

    def survivor(worker_id: str) -> None:
        mine: list[tuple[int, str | None, int | None]] = []
        with Journal.open(journal_url, clock=clock) as j:
            start.wait()
            while batch := j.claim(job.id, worker_id, lease_s=60, limit=1):
                mine += [(i.id, i.session_token, i.committed_offset) for i in batch]
        taken[worker_id] = mine

    threads = [threading.Thread(target=survivor, args=(w,)) for w in ("s1", "s2")]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    got = sorted(t for batch in taken.values() for t in batch)
    assert got == sorted((i.id, f"tok-{i.id}", 1000 + i.id) for i in dead)
    owners = {i.lease_owner for i in journal.iter_items(job.id)}
    assert owners <= {"s1", "s2"} and "dead" not in owners


def test_claimable_tells_locked_pending_items_from_an_empty_job(journal_url: str, journal: Journal,
                                                                 clock: FakeClock) -> None:
    """An empty claim is not the end of the work while files are claimable: on PostgreSQL a concurrent
    claim locks up to its limit of candidate rows (FOR UPDATE SKIP LOCKED) before it keeps the ones
    within its byte bound, and other claimers skip every locked row until it commits. A worker that
    ended on that empty claim left the job to the claimer alone (and to nobody once it was killed)."""
    import sqlalchemy as sa

    from driveferry.journal.db import to_url
    job = journal.get_or_create_job("src", "dst")
    journal.plan_items(job.id, files(3, size_bytes=10 << 20))
    assert journal.claimable(job.id)
    if journal_url.startswith("postgresql"):  # SQLite serialises claims (BEGIN IMMEDIATE): no such window
        engine = sa.create_engine(to_url(journal_url))
        try:
            with engine.begin() as conn:  # another worker's claim, between its SELECT ... FOR UPDATE and commit
                conn.execute(sa.text("SELECT id FROM items WHERE job_id = :j AND state = 'pending' FOR UPDATE"),
                             {"j": job.id})
                assert journal.claim(job.id, "w2", lease_s=60, limit=32) == []
                assert journal.claimable(job.id)  # so w2 tries again rather than ending its run
        finally:
            engine.dispose()
    claimed = journal.claim(job.id, "w1", lease_s=60, limit=32)
    assert [i.path for i in claimed] == ["dir/f0000", "dir/f0001", "dir/f0002"]
    assert not journal.claimable(job.id)  # all leased, none expired: the others wait on the leases instead
    clock.advance(61)
    assert journal.claimable(job.id)  # w1's leases expired: a claim would take them over
    for item in journal.claim(job.id, "w2", lease_s=60, limit=32):
        journal.complete(item.id, f"dest-{item.id}", {"md5": "00"}, 10 << 20)
    assert not journal.claimable(job.id)
