"""Work distribution: claiming items under a lease, checkpointing in-flight uploads, finishing items.

A worker claims pending items (or in-progress items whose lease expired: their worker died) and holds
each under a lease it renews while it works. Only the lease holder may checkpoint, fail or mark an item;
anyone else gets LeaseLostError. The upload session token, committed offset and hash state survive a lost
lease, so the next worker resumes mid-file. Lease times use the workers' clocks: keep relay VMs on NTP
and leases far longer than any clock skew (minutes, not seconds).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from driveferry.errors import JournalError
from driveferry.journal import schema as t
from driveferry.journal.convert import StoreBase, dump_json, to_item
from driveferry.journal.records import FINAL_STATES, Completion, ItemRecord, ItemState

log = logging.getLogger(__name__)

_NO_SESSION: dict[str, Any] = {"session_token": None, "committed_offset": None, "session_started_at": None}
_NO_LEASE: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}


def _checkpoint_statement() -> sa.Update:
    """The UPDATE of `LeaseOps.checkpoint`, built once: a worker checkpoints after every chunk, and
    building the statement cost far more than running it. Its WHERE is the lease check;
    `session_started_at` changes only with the token."""
    c = t.items.c
    return (sa.update(t.items)
            .where(c.id == sa.bindparam("p_item"), c.lease_owner == sa.bindparam("p_worker"),
                   c.state == ItemState.IN_PROGRESS.value)
            .values(session_token=sa.bindparam("p_token"), committed_offset=sa.bindparam("p_offset"),
                    bytes_done=sa.bindparam("p_offset"),
                    updated_at=sa.bindparam("p_now"),
                    session_started_at=sa.case(
                        (c.session_token.is_not_distinct_from(sa.bindparam("p_token")), c.session_started_at),
                        else_=sa.bindparam("p_started", type_=c.session_started_at.type))))


_CHECKPOINT = _checkpoint_statement()


def _within(candidates: list[tuple[int, int | None]], max_bytes: int | None) -> list[int]:
    """The ids of the longest prefix of (id, size) whose sizes sum to at most `max_bytes` (at least one)."""
    ids: list[int] = []
    total = 0
    for item_id, size in candidates:
        total += size or 0
        if ids and max_bytes is not None and total > max_bytes:
            break
        ids.append(item_id)
    return ids


class LeaseOps(StoreBase):
    def claim(self, job_id: int, worker_id: str, lease_s: float, limit: int = 1, *,
              kinds: Collection[str] | None = None, max_bytes: int | None = None) -> list[ItemRecord]:
        """Lease up to `limit` items of the job to `worker_id` for `lease_s` seconds.

        `max_bytes` bounds the batch by size: items are taken in order while their sizes add up to at
        most `max_bytes`, and the first is always taken. So a batch is many small files or one large
        file, and a large file is never claimed only to be handed back (which would leave other
        claimers empty-handed meanwhile).

        In-progress items whose lease has expired (their worker died) come first, as their upload
        sessions expire on the server; then pending items, lowest id (planning order) first. Session
        token, committed offset and hash state are kept for resuming. `kinds` restricts the item kinds
        (e.g. {"folder"} to create folders first). Concurrent claimers never get the same item:
        PostgreSQL skips rows another transaction has locked (FOR UPDATE SKIP LOCKED), SQLite runs the
        whole claim under BEGIN IMMEDIATE. Returns the claimed items in id order (empty when there is nothing to do);
        those taken from another worker's expired lease have `taken_over` set.
        Raises JournalError.
        """
        if limit < 1:
            return []
        now = self._now()
        c = t.items.c
        # Two queries rather than one with OR: each walks the (job_id, state, id) index in order and
        # stops at `limit`, where the OR made SQLite sort every item of the job on each claim.
        expired = sa.and_(c.job_id == job_id, c.state == ItemState.IN_PROGRESS.value, c.lease_expires_at < now)
        pending = sa.and_(c.job_id == job_id, c.state == ItemState.PENDING.value)
        if kinds is not None:
            expired = sa.and_(expired, c.kind.in_(list(kinds)))
            pending = sa.and_(pending, c.kind.in_(list(kinds)))
        with self._db.write() as conn:
            stale = conn.execute(sa.select(c.id, c.lease_owner, c.size_bytes).where(expired).order_by(c.id)
                                 .limit(limit).with_for_update(skip_locked=True)).all()
            candidates = [(r.id, r.size_bytes) for r in stale]
            taken = {r.id for r in stale if r.lease_owner != worker_id}
            if len(candidates) < limit:
                candidates += [(r.id, r.size_bytes) for r in conn.execute(
                    sa.select(c.id, c.size_bytes).where(pending).order_by(c.id).limit(limit - len(candidates))
                    .with_for_update(skip_locked=True))]
            ids = _within(candidates, max_bytes)
            if not ids:
                return []
            conn.execute(sa.update(t.items).where(c.id.in_(ids)).values(
                state=ItemState.IN_PROGRESS.value, lease_owner=worker_id,
                lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now))
            rows = conn.execute(sa.select(t.items).where(c.id.in_(ids)).order_by(c.id)).all()
        return [replace(to_item(r), taken_over=True) if r.id in taken else to_item(r) for r in rows]

    def claimable(self, job_id: int, *, kinds: Collection[str] | None = None) -> bool:
        """Whether the job has items a claim could take: pending, or in progress under an expired lease.

        A claim that found none while this is true met rows a concurrent claim holds locked: on
        PostgreSQL a claim locks up to its `limit` candidates (FOR UPDATE SKIP LOCKED) before it keeps
        those within `max_bytes`, and the others skip every locked row until it commits, which they
        cannot tell from an empty job. Raises JournalError."""
        now = self._now()
        c = t.items.c
        ready = sa.or_(c.state == ItemState.PENDING.value,
                       sa.and_(c.state == ItemState.IN_PROGRESS.value, c.lease_expires_at < now))
        where = sa.and_(c.job_id == job_id, ready)
        if kinds is not None:
            where = sa.and_(where, c.kind.in_(list(kinds)))
        with self._db.read() as conn:
            return conn.execute(sa.select(c.id).where(where).limit(1)).first() is not None

    def renew(self, worker_id: str, item_ids: Collection[int], lease_s: float) -> frozenset[int]:
        """Extend the leases `worker_id` still holds among `item_ids` to now + `lease_s` seconds.

        Returns the ids renewed; an id missing from the result was lost (stop working on it).
        Raises JournalError.
        """
        if not item_ids:
            return frozenset()
        now = self._now()
        c = t.items.c
        mine = sa.and_(c.id.in_(list(item_ids)), c.lease_owner == worker_id,
                       c.state == ItemState.IN_PROGRESS.value)
        with self._db.write() as conn:
            conn.execute(sa.update(t.items).where(mine).values(
                lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now))
            return frozenset(conn.scalars(sa.select(c.id).where(mine)))

    def checkpoint(self, item_id: int, worker_id: str, session_token: str | None, committed_offset: int) -> None:
        """Record an in-flight upload: its session token and the offset the destination has committed.
        `session_started_at` is set when the token changes; a None
        token with offset 0 forgets a lost session. `bytes_done` follows the committed offset.

        Raises LeaseLostError when `worker_id` no longer holds the lease (nothing is written),
        JournalError for a missing item or a database error.
        """
        now = self._now()
        with self._db.write() as conn:
            done = conn.execute(_CHECKPOINT, {
                "p_item": item_id, "p_worker": worker_id, "p_token": session_token, "p_offset": committed_offset,
                "p_now": now,
                "p_started": now if session_token is not None else None})
            if done.rowcount != 1:  # say why: no such item, or not (or no longer) this worker's
                self._require_lease(self._lock_item(conn, item_id), worker_id)

    def checkpoint_many(self, worker_id: str, points: Sequence[tuple[int, str | None, int]]) -> list[int]:
        """`checkpoint` of several (item id, session token, committed offset) in one transaction; the ids
        recorded. An item this worker no longer holds the lease on is left out, unchanged."""
        if not points:
            return []
        now = self._now()
        c = t.items.c
        with self._db.write() as conn:
            # the rows this worker holds, locked, then one executemany: two statements for a claimed
            # batch of small files, not one per file (each cost more in SQLAlchemy than in the database)
            held = set(conn.scalars(sa.select(c.id).where(
                c.id.in_([p[0] for p in points]), c.lease_owner == worker_id,
                c.state == ItemState.IN_PROGRESS.value).with_for_update()))
            recorded = [p for p in points if p[0] in held]
            if recorded:
                conn.execute(_CHECKPOINT, [
                    {"p_item": item_id, "p_worker": worker_id, "p_token": token, "p_offset": offset, "p_now": now,
                     "p_started": now if token is not None else None} for item_id, token, offset in recorded])
        return [p[0] for p in recorded]

    def complete(self, item_id: int, dest_id: str, dest_hashes: Mapping[str, str], size_bytes: int) -> None:
        """Mark the item done with its destination id and the hashes the destination reported.

        Deliberately no lease check: the bytes are on the destination, and forgetting that would upload
        them again. The session and lease are cleared, so a worker still holding a stale lease on the
        item gets LeaseLostError at its next checkpoint. Raises JournalError (also for a missing item).
        """
        self.complete_many([Completion(item_id, dest_id, dest_hashes, size_bytes)])

    def complete_many(self, done: Sequence[Completion]) -> None:
        """`complete` for several items in one transaction (a worker's finished small files).

        Raises JournalError (also for a missing item; then none of them is marked).
        """
        if not done:
            return
        now = self._now()
        c = t.items.c
        ids = [d.item_id for d in done]
        with self._db.write() as conn:
            rows = {r.id: r for r in conn.execute(sa.select(c.id, c.state, c.dest_id).where(c.id.in_(ids))
                                                  .with_for_update())}
            for d in done:
                row = rows.get(d.item_id)
                if row is None:
                    raise JournalError(f"journal {self._db.label}: no item {d.item_id}")
                if row.state == ItemState.DONE and row.dest_id not in (None, d.dest_id):
                    # Two workers finished the same item (one had lost its lease): keep evidence of both.
                    log.warning("item %s was already done as %s and is now done as %s: the destination may "
                                "hold two copies", d.item_id, row.dest_id, d.dest_id)
            conn.execute(
                sa.update(t.items).where(c.id == sa.bindparam("item_id")).values(
                    state=ItemState.DONE.value, reason=None, dest_id=sa.bindparam("dest"),
                    dest_hashes=sa.bindparam("hashes"), bytes_done=sa.bindparam("nbytes"), updated_at=now,
                    **_NO_SESSION, **_NO_LEASE),
                [{"item_id": d.item_id, "dest": d.dest_id, "hashes": dump_json(d.dest_hashes),
                  "nbytes": d.size_bytes} for d in done])

    def fail(self, item_id: int, kind: str, message: str, *, retryable: bool, expected: str | None = None,
             actual: str | None = None, worker_id: str | None = None, run_id: str | None = None,
             max_attempts: int = 5, reset_session: bool = False) -> ItemState:
        """Record a failed attempt (always kept in item_errors with its evidence) and release the item.

        A retryable failure returns the item to pending with attempts + 1, or makes it failed once
        `max_attempts` attempts have failed; a permanent one makes it failed at once. The upload
        session is kept for the retry unless `reset_session` (e.g. after an integrity failure the
        session was aborted) or the item failed for good. With `worker_id`, the state only changes if
        that worker holds the lease. Returns the item's new state.

        Raises LeaseLostError (after recording the error) when `worker_id` lost the lease, JournalError.
        """
        now = self._now()
        with self._db.write() as conn:
            row = self._lock_item(conn, item_id)
            conn.execute(sa.insert(t.item_errors).values(
                item_id=item_id, run_id=run_id, at=now, kind=kind, message=message,
                expected=expected, actual=actual))
            lost = worker_id is not None and (row.state != ItemState.IN_PROGRESS.value
                                              or row.lease_owner != worker_id)
            state = ItemState(row.state)
            if not lost:
                attempts = row.attempts + 1
                state = ItemState.PENDING if retryable and attempts < max_attempts else ItemState.FAILED
                values: dict[str, Any] = {"state": state.value, "reason": f"{kind}: {message}",
                                          "attempts": attempts, "updated_at": now, **_NO_LEASE}
                if reset_session or state is ItemState.FAILED:
                    values.update(_NO_SESSION, bytes_done=0)
                conn.execute(sa.update(t.items).where(t.items.c.id == item_id).values(**values))
        if lost:
            # Outside the transaction so that the error row is committed as evidence.
            self._require_lease(row, worker_id or "")
        return state

    def mark(self, item_id: int, state: ItemState, reason: str, *, worker_id: str | None = None) -> None:
        """Set an item skipped or unsupported, with the reason shown by status and verify.

        Raises ValueError for any other state, LeaseLostError when `worker_id` is given and does not
        hold the lease, JournalError.
        """
        if state not in (ItemState.SKIPPED, ItemState.UNSUPPORTED):
            raise ValueError(f"mark() sets skipped or unsupported, not {state}")
        now = self._now()
        with self._db.write() as conn:
            row = self._lock_item(conn, item_id)
            if worker_id is not None:
                self._require_lease(row, worker_id)
            conn.execute(sa.update(t.items).where(t.items.c.id == item_id).values(
                state=state.value, reason=reason, updated_at=now, **_NO_SESSION, **_NO_LEASE))

    def release(self, worker_id: str) -> int:
        """Return every item `worker_id` holds to pending (a clean stop), keeping their sessions so the
        next run resumes mid-file. Returns how many items were released. Raises JournalError."""
        c = t.items.c
        with self._db.write() as conn:
            result = conn.execute(sa.update(t.items)
                                  .where(c.lease_owner == worker_id, c.state == ItemState.IN_PROGRESS.value)
                                  .values(state=ItemState.PENDING.value, updated_at=self._now(), **_NO_LEASE))
        return int(result.rowcount)

    def requeue(self, job_id: int, states: Collection[ItemState] = (ItemState.FAILED,)) -> int:
        """Give items in final `states` (failed by default) a fresh start: pending, attempts 0.

        Returns how many items were requeued. Raises ValueError for a non-final state, JournalError.
        """
        bad = set(states) - FINAL_STATES
        if bad:
            raise ValueError(f"requeue() takes final states only, not {sorted(bad)}")
        c = t.items.c
        with self._db.write() as conn:
            result = conn.execute(sa.update(t.items)
                                  .where(c.job_id == job_id, c.state.in_([s.value for s in states]))
                                  .values(state=ItemState.PENDING.value, attempts=0, reason=None,
                                          updated_at=self._now(), **_NO_LEASE))
        return int(result.rowcount)
