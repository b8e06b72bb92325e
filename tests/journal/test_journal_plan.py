"""Planning: jobs found again by their specs, streaming upserts, and what a changed source does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from journal_helpers import T0, FakeClock, files

from driveferry.journal import ItemState, Journal, LeaseLostError, PlannedItem, PlanResult


def test_same_specs_find_the_same_job_after_reopening(journal_url: str, clock: FakeClock) -> None:
    with Journal.open(journal_url, clock=clock) as j:
        job = j.get_or_create_job("onedrive:/Docs", "gdrive:/Docs")
        other = j.get_or_create_job("onedrive:/Docs", "gdrive:/Elsewhere")
        j.plan_items(job.id, files(3))
    assert other.id != job.id
    assert job.created_at == T0
    with Journal.open(journal_url, clock=clock) as j:  # a fresh relay VM running the same command
        again = j.get_or_create_job("onedrive:/Docs", "gdrive:/Docs")
        assert again == job
        assert j.find_job("onedrive:/Docs", "gdrive:/Nope") is None
        assert [x.id for x in j.jobs()] == [job.id, other.id]
        assert j.counts(job.id)[ItemState.PENDING].items == 3


def test_plan_adds_pending_items_and_counts_bytes(journal: Journal) -> None:
    job = journal.get_or_create_job("src", "dst")
    result = journal.plan_items(job.id, files(23, size_bytes=7), batch_size=5)
    assert result == PlanResult(added=23, changed=0, unchanged=0)
    counts = journal.counts(job.id)
    assert counts[ItemState.PENDING].items == 23
    assert counts[ItemState.PENDING].size_bytes == 23 * 7
    assert all(counts[s].items == 0 for s in ItemState if s is not ItemState.PENDING)
    item = journal.find_item(job.id, "dir/f0005")
    assert item is not None
    assert item.source_hashes == {"quickxor": f"{5:040x}"}
    assert item.modified == T0 - timedelta(days=1) and item.modified.tzinfo is UTC
    assert (item.attempts, item.bytes_done, item.lease_owner) == (0, 0, None)


def test_plan_streams_in_batches(journal: Journal, journal_url: str) -> None:
    """Batches are committed while the input is still being produced: the tree is never materialised."""
    job = journal.get_or_create_job("src", "dst")
    seen_in_db: list[int] = []

    def walk() -> Iterator[PlannedItem]:
        with Journal.open(journal_url) as observer:
            for n, item in enumerate(files(12)):
                if n in (4, 8):
                    seen_in_db.append(observer.counts(job.id)[ItemState.PENDING].items)
                yield item

    assert journal.plan_items(job.id, walk(), batch_size=4).added == 12
    assert seen_in_db == [4, 8]


def test_replan_leaves_unchanged_items_alone(journal: Journal) -> None:
    job = journal.get_or_create_job("src", "dst")
    journal.plan_items(job.id, files(4))
    [item] = journal.claim(job.id, "w1", lease_s=60)
    journal.complete(item.id, "dest-1", {"md5": "aa"}, 100)
    result = journal.plan_items(job.id, files(4))
    assert result == PlanResult(added=0, changed=0, unchanged=4)
    done = journal.get_item(item.id)
    assert (done.state, done.dest_id, done.dest_hashes) == (ItemState.DONE, "dest-1", {"md5": "aa"})


@pytest.mark.parametrize("change", [
    {"size_bytes": 101},
    {"modified": T0},
    {"hashes": {"quickxor": "f" * 40}},
    {"kind": "native_doc"},
])
def test_changed_source_resets_a_done_item(journal: Journal, change: dict[str, object]) -> None:
    job = journal.get_or_create_job("src", "dst")
    [planned] = files(1)
    journal.plan_items(job.id, [planned])
    [item] = journal.claim(job.id, "w1", lease_s=60)
    journal.fail(item.id, "TransientError", "reset", retryable=True, worker_id="w1")
    [item] = journal.claim(job.id, "w1", lease_s=60)
    journal.complete(item.id, "dest-1", {"md5": "aa"}, 100)
    assert journal.plan_items(job.id, [replace(planned, **change)]) == PlanResult(changed=1)  # type: ignore[arg-type]
    after = journal.get_item(item.id)
    assert after.state is ItemState.PENDING
    assert (after.attempts, after.bytes_done, after.dest_hashes) == (0, 0, {})
    assert after.dest_id == "dest-1"  # the old copy, for migrate to replace


def test_changed_source_takes_an_in_flight_item_from_its_worker(journal: Journal) -> None:
    job = journal.get_or_create_job("src", "dst")
    [planned] = files(1)
    journal.plan_items(job.id, [planned])
    [item] = journal.claim(job.id, "w1", lease_s=60)
    journal.checkpoint(item.id, "w1", '{"url": "u1"}', 4096)
    journal.plan_items(job.id, [replace(planned, size_bytes=5000)])
    after = journal.get_item(item.id)
    assert (after.state, after.session_token, after.committed_offset, after.lease_owner) == \
        (ItemState.PENDING, None, None, None)
    assert after.size_bytes == 5000
    with pytest.raises(LeaseLostError):
        journal.checkpoint(item.id, "w1", '{"url": "u1"}', 8192)


def test_folder_mtime_and_missing_hashes_are_not_changes(journal: Journal) -> None:
    job = journal.get_or_create_job("src", "dst")
    folder = PlannedItem("dir", "id-dir", "folder", modified=T0)
    [f] = files(1)
    f = replace(f, hashes={"quickxor": "ab", "sha256": "cd"})
    journal.plan_items(job.id, [folder, f])
    moved = replace(folder, modified=T0 + timedelta(hours=1))
    fewer = replace(f, source_id="new-id", hashes={"quickxor": "ab"})
    assert journal.plan_items(job.id, [moved, fewer]) == PlanResult(unchanged=2)
    item = journal.find_item(job.id, f.path)
    assert item is not None
    assert item.source_id == "new-id"
    assert item.source_hashes == {"quickxor": "ab", "sha256": "cd"}


def test_last_sighting_of_a_path_in_a_batch_wins(journal: Journal) -> None:
    job = journal.get_or_create_job("src", "dst")
    [f] = files(1)
    assert journal.plan_items(job.id, [f, replace(f, size_bytes=5)]).added == 1
    item = journal.find_item(job.id, f.path)
    assert item is not None and item.size_bytes == 5


def test_naive_modified_is_refused(journal: Journal) -> None:
    job = journal.get_or_create_job("src", "dst")
    with pytest.raises(ValueError, match="timezone-aware"):
        journal.plan_items(job.id, [PlannedItem("a", "id", "file", 1, datetime(2024, 1, 1))])


def test_from_entry_reads_a_provider_entry() -> None:
    from driveferry.integrity.hashes import HashType
    from driveferry.providers.base import Entry, Kind

    entry = Entry(id="X1", path="a/b.txt", name="b.txt", kind=Kind.FILE, size=3, modified=T0,
                  hashes={HashType.QUICKXOR: "00ff"})
    assert PlannedItem.from_entry(entry) == PlannedItem("a/b.txt", "X1", "file", 3, T0, {"quickxor": "00ff"})


def test_iter_items_streams_in_pages_and_filters_by_state(journal: Journal) -> None:
    job = journal.get_or_create_job("src", "dst")
    journal.plan_items(job.id, files(25))
    claimed = journal.claim(job.id, "w1", lease_s=60, limit=3)
    paths = [i.path for i in journal.iter_items(job.id, page_size=4)]
    assert paths == sorted(f.path for f in files(25))
    in_flight = list(journal.iter_items(job.id, ItemState.IN_PROGRESS, page_size=2))
    assert [i.id for i in in_flight] == [i.id for i in claimed]
    assert len(list(journal.iter_items(job.id, ItemState.PENDING, page_size=7))) == 22
    assert list(journal.iter_items(job.id + 999)) == []


def test_runs_record_options_and_summary(journal: Journal, clock: FakeClock) -> None:
    job = journal.get_or_create_job("src", "dst")
    run = journal.start_run(job.id, "w1", {"transfers": 4, "dry_run": False})
    clock.advance(30)
    journal.finish_run(run.id, {"done": 3, "failed": 1})
    [stored] = journal.runs(job.id)
    assert stored.id == run.id and len(run.id) == 36
    assert stored.options == {"transfers": 4, "dry_run": False}
    assert stored.summary == {"done": 3, "failed": 1}
    assert stored.finished_at is not None and stored.finished_at - stored.started_at == timedelta(seconds=30)


def test_two_planners_of_one_job_at_once(journal_url: str, journal: Journal, clock: FakeClock) -> None:
    """Workers started together may both plan: every path ends up once, and nobody errors."""
    import threading

    job = journal.get_or_create_job("src", "dst")
    results: list[PlanResult] = []
    start = threading.Barrier(2)

    def plan() -> None:
        with Journal.open(journal_url, clock=clock) as mine:
            start.wait()
            results.append(mine.plan_items(job.id, files(200), batch_size=50))

    threads = [threading.Thread(target=plan) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert len(results) == 2
    assert journal.counts(job.id)[ItemState.PENDING].items == 200
    assert sum(1 for _ in journal.iter_items(job.id)) == 200
