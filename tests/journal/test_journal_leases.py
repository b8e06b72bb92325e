"""Claims, leases, checkpoints and the end of an item: complete, fail, mark, release, requeue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from journal_helpers import T0, FakeClock, files

from driveferry.errors import JournalError
from driveferry.journal import ItemState, Journal, LeaseLostError
from driveferry.journal.records import PlannedItem


def _job(journal: Journal, n: int = 5) -> int:
    job = journal.get_or_create_job("src", "dst")
    journal.plan_items(job.id, files(n))
    return job.id


def test_claim_leases_lowest_ids_once(journal: Journal) -> None:
    job_id = _job(journal, 5)
    first = journal.claim(job_id, "w1", lease_s=90, limit=2)
    second = journal.claim(job_id, "w2", lease_s=90, limit=10)
    assert [i.path for i in first] == ["dir/f0000", "dir/f0001"]
    assert [i.path for i in second] == ["dir/f0002", "dir/f0003", "dir/f0004"]
    assert journal.claim(job_id, "w3", lease_s=90) == []
    assert all(i.state is ItemState.IN_PROGRESS for i in first + second)
    assert {i.lease_owner for i in first} == {"w1"}
    assert first[0].lease_expires_at == T0 + timedelta(seconds=90)
    assert journal.counts(job_id)[ItemState.IN_PROGRESS].items == 5


def test_claim_by_kind(journal: Journal) -> None:
    job_id = _job(journal, 2)
    journal.plan_items(job_id, [PlannedItem("dir", "d", "folder")])
    [folder] = journal.claim(job_id, "w1", lease_s=60, limit=5, kinds={"folder"})
    assert folder.path == "dir"
    assert journal.claim(job_id, "w1", lease_s=60, kinds={"folder"}) == []


def test_expired_lease_is_reclaimed_with_its_session(journal: Journal, clock: FakeClock) -> None:
    job_id = _job(journal, 1)
    [item] = journal.claim(job_id, "w1", lease_s=60)
    journal.checkpoint(item.id, "w1", '{"upload_url": "https://x/1"}', 8 * 2**20)
    started = journal.get_item(item.id).session_started_at
    clock.advance(59)
    assert journal.claim(job_id, "w2", lease_s=60) == []  # still leased
    clock.advance(2)  # w1's relay VM died; its lease ran out
    [taken] = journal.claim(job_id, "w2", lease_s=60)
    assert taken.id == item.id and taken.lease_owner == "w2"
    assert taken.session_token == '{"upload_url": "https://x/1"}'
    assert taken.committed_offset == 8 * 2**20 and taken.bytes_done == 8 * 2**20
    assert taken.session_started_at == started == T0
    # w1 comes back: every write about the item is refused, nothing changes.
    with pytest.raises(LeaseLostError) as lost:
        journal.checkpoint(item.id, "w1", '{"upload_url": "https://x/2"}', 16 * 2**20)
    assert lost.value.owner == "w2"
    assert journal.renew("w1", [item.id], lease_s=60) == frozenset()
    assert journal.get_item(item.id).committed_offset == 8 * 2**20
    assert journal.renew("w2", [item.id], lease_s=600) == {item.id}
    assert journal.get_item(item.id).lease_expires_at == clock() + timedelta(seconds=600)


def test_checkpoint_tracks_session_start(journal: Journal, clock: FakeClock) -> None:
    job_id = _job(journal, 1)
    [item] = journal.claim(job_id, "w1", lease_s=60)
    journal.checkpoint(item.id, "w1", "tok-1", 0)
    clock.advance(10)
    journal.checkpoint(item.id, "w1", "tok-1", 100)
    after = journal.get_item(item.id)
    assert (after.session_started_at, after.committed_offset, after.bytes_done) == (T0, 100, 100)
    journal.checkpoint(item.id, "w1", "tok-2", 0)  # session lost, a new one started
    assert journal.get_item(item.id).session_started_at == T0 + timedelta(seconds=10)
    journal.checkpoint(item.id, "w1", None, 0)
    cleared = journal.get_item(item.id)
    assert (cleared.session_token, cleared.session_started_at) == (None, None)


def test_checkpoint_many_records_only_held_items(journal: Journal, clock: FakeClock) -> None:
    """One batch: the items this worker still holds take their tokens; one whose lease another worker
    took over, an unclaimed one and a missing id are left out, unchanged."""
    job_id = _job(journal, 4)
    a, b = journal.claim(job_id, "w1", lease_s=60, limit=2)
    journal.checkpoint(b.id, "w1", "tok-b0", 0)
    clock.advance(61)  # w1's leases run out; w2 takes both, then w1 renews nothing
    taken = journal.claim(job_id, "w2", lease_s=60, limit=2)
    assert {i.id for i in taken} == {a.id, b.id}
    [c] = journal.claim(job_id, "w1", lease_s=60)
    unclaimed = next(i for i in journal.iter_items(job_id) if i.state is ItemState.PENDING)
    clock.advance(5)
    recorded = journal.checkpoint_many("w1", [(b.id, "tok-b1", 0), (c.id, "tok-c", 0),
                                              (unclaimed.id, "tok-u", 0), (987654, "tok-x", 0)])
    assert recorded == [c.id]
    assert journal.get_item(c.id).session_token == "tok-c"
    assert journal.get_item(c.id).session_started_at == T0 + timedelta(seconds=66)
    assert journal.get_item(b.id).session_token == "tok-b0" and journal.get_item(b.id).lease_owner == "w2"
    assert journal.get_item(unclaimed.id).session_token is None
    assert journal.checkpoint_many("w2", [(a.id, "tok-a", 0), (b.id, None, 0)]) == [a.id, b.id]
    assert (journal.get_item(a.id).session_token, journal.get_item(b.id).session_token) == ("tok-a", None)
    assert journal.checkpoint_many("w2", []) == []


def test_checkpoint_of_unclaimed_or_missing_item(journal: Journal) -> None:
    job_id = _job(journal, 1)
    item = next(journal.iter_items(job_id))
    with pytest.raises(LeaseLostError):
        journal.checkpoint(item.id, "w1", "tok", 1)
    with pytest.raises(JournalError, match="no item 987654"):
        journal.checkpoint(987654, "w1", "tok", 1)


def test_complete_clears_session_and_lease(journal: Journal) -> None:
    job_id = _job(journal, 1)
    [item] = journal.claim(job_id, "w1", lease_s=60)
    journal.checkpoint(item.id, "w1", "tok", 50)
    journal.complete(item.id, "gdrive-id", {"md5": "0a", "sha256": "0b"}, 100)
    done = journal.get_item(item.id)
    assert done.state is ItemState.DONE
    assert (done.dest_id, done.dest_hashes, done.bytes_done) == ("gdrive-id", {"md5": "0a", "sha256": "0b"}, 100)
    assert (done.session_token, done.committed_offset, done.lease_owner) == (None, None, None)
    assert journal.counts(job_id)[ItemState.DONE].bytes_done == 100
    with pytest.raises(LeaseLostError):
        journal.checkpoint(item.id, "w1", "tok", 60)
    assert journal.claim(job_id, "w2", lease_s=60) == []


def test_second_completion_is_logged(journal: Journal, caplog: pytest.LogCaptureFixture) -> None:
    job_id = _job(journal, 1)
    [item] = journal.claim(job_id, "w1", lease_s=60)
    journal.complete(item.id, "copy-1", {}, 100)
    journal.complete(item.id, "copy-1", {}, 100)  # the same copy again: nothing to say
    assert caplog.records == []
    journal.complete(item.id, "copy-2", {}, 100)
    assert "may hold two copies" in caplog.text
    assert journal.get_item(item.id).dest_id == "copy-2"


def test_retryable_failures_until_max_attempts(journal: Journal) -> None:
    job_id = _job(journal, 1)
    for attempt in (1, 2):
        [item] = journal.claim(job_id, "w1", lease_s=60)
        journal.checkpoint(item.id, "w1", "tok", 10 * attempt)
        state = journal.fail(item.id, "TransientError", f"reset {attempt}", retryable=True,
                             worker_id="w1", run_id="run-1", max_attempts=3)
        assert state is ItemState.PENDING
        again = journal.get_item(item.id)
        assert (again.attempts, again.session_token, again.committed_offset) == (attempt, "tok", 10 * attempt)
    [item] = journal.claim(job_id, "w1", lease_s=60)
    assert journal.fail(item.id, "TransientError", "reset 3", retryable=True, max_attempts=3) is ItemState.FAILED
    failed = journal.get_item(item.id)
    assert (failed.attempts, failed.session_token, failed.lease_owner) == (3, None, None)
    assert failed.reason == "TransientError: reset 3"
    errors = journal.item_errors(item.id)
    assert [e.message for e in errors] == ["reset 1", "reset 2", "reset 3"]
    assert errors[0].run_id == "run-1" and errors[2].run_id is None
    assert journal.claim(job_id, "w1", lease_s=60) == []
    assert journal.requeue(job_id) == 1
    requeued = journal.get_item(item.id)
    assert (requeued.state, requeued.attempts, requeued.reason) == (ItemState.PENDING, 0, None)


def test_integrity_failure_is_permanent_and_keeps_evidence(journal: Journal) -> None:
    job_id = _job(journal, 1)
    [item] = journal.claim(job_id, "w1", lease_s=60)
    journal.checkpoint(item.id, "w1", "tok", 100)
    state = journal.fail(item.id, "IntegrityError", "quickxor mismatch", retryable=False,
                         expected="aa" * 20, actual="bb" * 20, worker_id="w1")
    assert state is ItemState.FAILED
    [error] = journal.item_errors(item.id)
    assert (error.kind, error.expected, error.actual) == ("IntegrityError", "aa" * 20, "bb" * 20)
    assert error.at == T0
    assert journal.get_item(item.id).session_token is None


def test_reset_session_on_retry(journal: Journal) -> None:
    job_id = _job(journal, 1)
    [item] = journal.claim(job_id, "w1", lease_s=60)
    journal.checkpoint(item.id, "w1", "tok", 100)
    journal.fail(item.id, "UploadSessionLostError", "gone", retryable=True, reset_session=True)
    after = journal.get_item(item.id)
    assert (after.state, after.session_token, after.committed_offset, after.bytes_done) == \
        (ItemState.PENDING, None, None, 0)


def test_fail_by_a_worker_without_the_lease(journal: Journal, clock: FakeClock) -> None:
    job_id = _job(journal, 1)
    [item] = journal.claim(job_id, "w1", lease_s=60)
    clock.advance(61)
    journal.claim(job_id, "w2", lease_s=60)
    with pytest.raises(LeaseLostError):
        journal.fail(item.id, "TransientError", "late", retryable=True, worker_id="w1")
    after = journal.get_item(item.id)
    assert (after.state, after.lease_owner, after.attempts) == (ItemState.IN_PROGRESS, "w2", 0)
    assert [e.message for e in journal.item_errors(item.id)] == ["late"]  # the evidence is kept


def test_mark_skipped_and_unsupported(journal: Journal) -> None:
    job_id = _job(journal, 3)
    a, b, c = journal.claim(job_id, "w1", lease_s=60, limit=3)
    journal.mark(a.id, ItemState.SKIPPED, "identical copy at destination", worker_id="w1")
    journal.mark(b.id, ItemState.UNSUPPORTED, "OneNote package")
    with pytest.raises(ValueError):
        journal.mark(c.id, ItemState.DONE, "no")
    with pytest.raises(LeaseLostError):
        journal.mark(c.id, ItemState.SKIPPED, "not mine", worker_id="w2")
    counts = journal.counts(job_id)
    assert (counts[ItemState.SKIPPED].items, counts[ItemState.UNSUPPORTED].items) == (1, 1)
    assert journal.get_item(b.id).reason == "OneNote package"
    assert journal.get_item(b.id).lease_owner is None


def test_release_returns_items_with_their_sessions(journal: Journal) -> None:
    job_id = _job(journal, 4)
    mine = journal.claim(job_id, "w1", lease_s=600, limit=2)
    journal.claim(job_id, "w2", lease_s=600, limit=1)
    journal.checkpoint(mine[0].id, "w1", "tok", 42)
    assert journal.release("w1") == 2
    assert journal.release("w1") == 0
    counts = journal.counts(job_id)
    assert (counts[ItemState.PENDING].items, counts[ItemState.IN_PROGRESS].items) == (3, 1)
    [resumed] = journal.claim(job_id, "w3", lease_s=60)  # lowest id first: the one with a session
    assert (resumed.id, resumed.session_token, resumed.committed_offset) == (mine[0].id, "tok", 42)


def test_requeue_refuses_non_final_states(journal: Journal) -> None:
    job_id = _job(journal, 1)
    with pytest.raises(ValueError):
        journal.requeue(job_id, [ItemState.PENDING])


def test_expired_items_are_resumed_before_pending_ones(journal: Journal, clock: FakeClock) -> None:
    job_id = _job(journal, 3)
    first, second, third = journal.claim(job_id, "w1", lease_s=60, limit=3)
    for item in (first, second):
        journal.fail(item.id, "TransientError", "retry later", retryable=True)
    clock.advance(61)
    [resumed] = journal.claim(job_id, "w2", lease_s=60)
    assert resumed.id == third.id
    assert [i.id for i in journal.claim(job_id, "w2", lease_s=60, limit=5)] == [first.id, second.id]


def test_complete_many_marks_every_item_in_one_transaction(journal: Journal) -> None:
    from driveferry.journal import Completion
    job_id = _job(journal, 4)
    items = journal.claim(job_id, "w1", lease_s=60, limit=4)
    journal.complete_many([Completion(i.id, f"dest-{i.id}", {"md5": f"{i.id:02x}"}, 10 * i.id) for i in items[:3]])
    after = [journal.get_item(i.id) for i in items]
    assert [a.state for a in after] == [ItemState.DONE] * 3 + [ItemState.IN_PROGRESS]
    assert [(a.dest_id, a.dest_hashes, a.bytes_done, a.lease_owner) for a in after[:3]] == [
        (f"dest-{i.id}", {"md5": f"{i.id:02x}"}, 10 * i.id, None) for i in items[:3]]
    assert journal.counts(job_id)[ItemState.DONE].items == 3
    with pytest.raises(JournalError, match="no item 987654"):  # all or nothing
        journal.complete_many([Completion(items[3].id, "d", {}, 1), Completion(987654, "d", {}, 1)])
    assert journal.get_item(items[3].id).state is ItemState.IN_PROGRESS
    journal.complete_many([])  # nothing to do


def test_only_another_workers_expired_lease_counts_as_taken_over(journal: Journal, clock: FakeClock) -> None:
    job_id = _job(journal, 3)
    journal.claim(job_id, "w1", lease_s=60, limit=1)
    journal.claim(job_id, "w2", lease_s=60, limit=1)
    clock.advance(61)
    claimed = journal.claim(job_id, "w2", lease_s=60, limit=3)
    assert [(i.path, i.taken_over) for i in claimed] == [
        ("dir/f0000", True), ("dir/f0001", False), ("dir/f0002", False)]
    assert not any(i.taken_over for i in journal.iter_items(job_id))
