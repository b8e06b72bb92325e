"""Status reads: the shared daily upload budget and worker heartbeats."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from journal_helpers import T0, FakeClock

from driveferry.journal import Journal, UploadUsage

GB = 10**9


def test_upload_budget_counts_a_rolling_window(journal: Journal) -> None:
    journal.record_upload("alice@example.com", 300 * GB, at=T0)
    journal.record_upload("alice@example.com", 200 * GB, at=T0 + timedelta(hours=6, seconds=30))
    journal.record_upload("alice@example.com", 50 * GB, at=T0 + timedelta(hours=6, seconds=45))
    journal.record_upload("bob@example.com", 1 * GB, at=T0)
    later = T0 + timedelta(hours=12)
    assert journal.uploaded_since("alice@example.com", later - timedelta(hours=24)) == \
        UploadUsage(550 * GB, T0)
    # 24 h after the first upload it leaves the window; the later minute is the oldest counted.
    after = T0 + timedelta(hours=24, minutes=1)
    assert journal.uploaded_since("alice@example.com", after - timedelta(hours=24)) == \
        UploadUsage(250 * GB, T0 + timedelta(hours=6))
    assert journal.uploaded_since("carol@example.com", T0) == UploadUsage(0, None)


def test_refunds_and_empty_minutes(journal: Journal) -> None:
    journal.record_upload("u", 100, at=T0)
    journal.record_upload("u", -100, at=T0 + timedelta(seconds=5))  # reserved, never sent
    journal.record_upload("u", 70, at=T0 + timedelta(minutes=3))
    assert journal.uploaded_since("u", T0) == UploadUsage(70, T0 + timedelta(minutes=3))


def test_window_start_never_under_counts(journal: Journal) -> None:
    journal.record_upload("u", 10, at=T0 + timedelta(seconds=10))
    # `since` falls after the upload but within its minute: counted (a budget errs on the safe side).
    assert journal.uploaded_since("u", T0 + timedelta(seconds=50)).bytes_in_window == 10
    assert journal.uploaded_since("u", T0 + timedelta(seconds=60)).bytes_in_window == 0


def test_old_buckets_are_pruned(journal: Journal) -> None:
    journal.record_upload("u", 5, at=T0)
    journal.record_upload("u", 7, at=T0 + timedelta(days=3))
    assert journal.uploaded_since("u", T0 - timedelta(days=1)).bytes_in_window == 7


def test_concurrent_records_lose_nothing(journal_url: str, journal: Journal, clock: FakeClock) -> None:
    def worker() -> None:
        with Journal.open(journal_url, clock=clock) as mine:
            for _ in range(20):
                mine.record_upload("shared", 3)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert journal.uploaded_since("shared", T0 - timedelta(minutes=1)).bytes_in_window == 3 * 20 * 3


def test_naive_times_are_refused(journal: Journal) -> None:
    with pytest.raises(ValueError):
        journal.record_upload("u", 1, at=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        journal.uploaded_since("u", datetime(2026, 1, 1))


def test_heartbeats_replace_and_list_latest_first(journal: Journal, clock: FakeClock) -> None:
    job = journal.get_or_create_job("src", "dst")
    other = journal.get_or_create_job("src2", "dst")
    journal.heartbeat("vm1-123", job_id=job.id, host="vm1", pid=123, run_id="r1")
    clock.advance(5)
    journal.heartbeat("vm2-9", job_id=job.id, host="vm2", pid=9)
    journal.heartbeat("vm3-1", job_id=other.id, host="vm3", pid=1)
    clock.advance(5)
    journal.heartbeat("vm1-123", job_id=job.id, host="vm1", pid=123, run_id="r1", current_item_id=7,
                      bytes_done=2**30, rate_bytes_per_s=12.5e6)
    workers = journal.workers(job.id)
    assert [w.worker_id for w in workers] == ["vm1-123", "vm2-9"]
    w1 = workers[0]
    assert (w1.current_item_id, w1.bytes_done, w1.rate_bytes_per_s, w1.run_id) == (7, 2**30, 12.5e6, "r1")
    assert w1.heartbeat_at == T0 + timedelta(seconds=10)
    assert workers[1].heartbeat_at == T0 + timedelta(seconds=5)
