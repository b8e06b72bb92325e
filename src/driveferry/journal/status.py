"""Reading the journal for status, workers and verify, and the shared daily upload budget.

Reads stream in pages by id (keyset pagination), each page its own short transaction, so a caller may
walk millions of items while workers write, and an abandoned iterator holds no connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import sqlalchemy as sa

from driveferry.errors import JournalError
from driveferry.journal import schema as t
from driveferry.journal.convert import StoreBase, aware, to_error, to_item, to_worker
from driveferry.journal.records import (
    ErrorRecord,
    ItemRecord,
    ItemState,
    StateTotal,
    UploadUsage,
    WorkerRecord,
)

QUOTA_BUCKET = timedelta(minutes=1)
QUOTA_KEEP = timedelta(days=2)  # buckets older than this cannot matter to a 24 h window


def _bucket(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


class StatusOps(StoreBase):
    def counts(self, job_id: int, *, files_only: bool = False) -> dict[ItemState, StateTotal]:
        """Items, source bytes and bytes sent per state for the job; every state is present.

        `files_only` leaves folders out (they have no bytes to send). Read from the running totals
        (journal/totals.py): a few rows whatever the job's size. Raises JournalError.
        """
        c = t.item_totals.c
        query = (sa.select(c.state, sa.func.sum(c.item_count), sa.func.sum(c.size_bytes), sa.func.sum(c.bytes_done))
                 .where(c.job_id == job_id).group_by(c.state))
        if files_only:
            query = query.where(c.folder == sa.false())
        totals = {state: StateTotal() for state in ItemState}
        with self._db.read() as conn:
            for state, n, size, done in conn.execute(query):
                totals[ItemState(state)] = StateTotal(items=int(n), size_bytes=int(size), bytes_done=int(done))
        return totals

    def count_unhashed_done(self, job_id: int) -> int:
        """Done files (not folders) with no destination hash recorded: nothing proved those copies.

        Read from the running totals. Raises JournalError.
        """
        c = t.item_totals.c
        query = sa.select(sa.func.coalesce(sa.func.sum(c.item_count), 0)).where(c.job_id == job_id,
                                                                             c.unhashed == sa.true())
        with self._db.read() as conn:
            return int(conn.scalar(query) or 0)

    def iter_items(self, job_id: int, state: ItemState | None = None, *,
                   page_size: int = 1000) -> Iterator[ItemRecord]:
        """The job's items (optionally in one state) in id order, streamed page by page.

        Items changing state while the iteration runs may be seen in their old or new state, or (if
        they move into `state` behind the cursor) not at all. Raises JournalError.
        """
        c = t.items.c
        last_id = 0
        while True:
            query = sa.select(t.items).where(c.job_id == job_id, c.id > last_id)
            if state is not None:
                query = query.where(c.state == state.value)
            with self._db.read() as conn:
                page = [to_item(r) for r in conn.execute(query.order_by(c.id).limit(page_size))]
            yield from page
            if len(page) < page_size:
                return
            last_id = page[-1].id

    def get_item(self, item_id: int) -> ItemRecord:
        """The item with this id. Raises JournalError when there is none."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(t.items).where(t.items.c.id == item_id)).first()
        if row is None:
            raise JournalError(f"journal {self._db.label}: no item {item_id}")
        return to_item(row)

    def find_item(self, job_id: int, path: str) -> ItemRecord | None:
        """The job's item for a source path, or None. Raises JournalError."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(t.items).where(t.items.c.job_id == job_id,
                                                         t.items.c.path == path)).first()
        return None if row is None else to_item(row)

    def item_errors(self, item_id: int) -> list[ErrorRecord]:
        """Every failed attempt recorded for the item, oldest first. Raises JournalError."""
        c = t.item_errors.c
        with self._db.read() as conn:
            rows = conn.execute(sa.select(t.item_errors).where(c.item_id == item_id).order_by(c.id)).all()
        return [to_error(r) for r in rows]

    def recent_errors(self, job_id: int, limit: int = 20) -> list[tuple[str, ErrorRecord]]:
        """The job's last `limit` failed attempts, newest first, each with its item's path.

        Raises JournalError.
        """
        e, i = t.item_errors.c, t.items.c
        query = (sa.select(i.path, t.item_errors).join(t.items, i.id == e.item_id)
                 .where(i.job_id == job_id).order_by(e.id.desc()).limit(limit))
        with self._db.read() as conn:
            return [(str(r.path), to_error(r)) for r in conn.execute(query)]

    # --- workers -------------------------------------------------------------------------------------

    def heartbeat(self, worker_id: str, *, job_id: int, host: str, pid: int, run_id: str | None = None,
                  current_item_id: int | None = None, bytes_done: int = 0,
                  rate_bytes_per_s: float = 0.0) -> None:
        """Record that the worker is alive and what it is doing (one row per worker, replaced).

        Raises JournalError.
        """
        values = {"worker_id": worker_id, "job_id": job_id, "run_id": run_id, "host": host, "pid": pid,
                  "heartbeat_at": self._now(), "current_item_id": current_item_id,
                  "bytes_done": bytes_done, "rate_bytes_per_s": rate_bytes_per_s}
        stmt = self._db.insert(t.workers).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=[t.workers.c.worker_id],
                                          set_={k: v for k, v in values.items() if k != "worker_id"})
        with self._db.write() as conn:
            conn.execute(stmt)

    def workers(self, job_id: int) -> list[WorkerRecord]:
        """The workers that ever sent a heartbeat for the job, latest heartbeat first.

        A worker whose heartbeat is old is dead or stuck; the caller decides what is old.
        Raises JournalError.
        """
        c = t.workers.c
        with self._db.read() as conn:
            rows = conn.execute(sa.select(t.workers).where(c.job_id == job_id)
                                .order_by(c.heartbeat_at.desc(), c.worker_id)).all()
        return [to_worker(r) for r in rows]

    # --- daily upload budget -------------------------------------------------------------------------

    def record_upload(self, user_key: str, nbytes: int, at: datetime | None = None) -> None:
        """Add `nbytes` (negative to refund) to what `user_key` uploaded in the minute of `at` (default
        now), shared by every worker writing as that destination user. Raises JournalError."""
        when = aware(at, "at") if at is not None else self._now()
        c = t.quota_usage.c
        stmt = self._db.insert(t.quota_usage).values(user_key=user_key, bucket_start=_bucket(when), bytes=nbytes)
        # Atomic add: two workers recording in the same minute must not lose either's bytes.
        stmt = stmt.on_conflict_do_update(index_elements=[c.user_key, c.bucket_start],
                                          set_={"bytes": c.bytes + stmt.excluded.bytes})
        with self._db.write() as conn:
            conn.execute(stmt)
            conn.execute(sa.delete(t.quota_usage).where(c.user_key == user_key,
                                                        c.bucket_start < _bucket(when) - QUOTA_KEEP))

    def uploaded_since(self, user_key: str, since: datetime) -> UploadUsage:
        """Bytes `user_key` uploaded from `since` on (counted from the start of its minute) and the start
        of the oldest minute that holds uploads. Raises ValueError for a naive `since`, JournalError."""
        c = t.quota_usage.c
        window = sa.and_(c.user_key == user_key, c.bucket_start >= _bucket(aware(since, "since")))
        with self._db.read() as conn:
            total = conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(c.bytes), 0)).where(window))
            oldest = conn.scalar(sa.select(sa.func.min(c.bucket_start)).where(window, c.bytes > 0))
        return UploadUsage(bytes_in_window=int(total or 0), oldest=oldest)

    def upload_minutes(self, since: datetime) -> list[tuple[str, datetime, int]]:
        """(user_key, minute, bytes) of every upload-budget minute from `since` on, oldest first: the
        destination's upload rate over time (kept for QUOTA_KEEP). Raises ValueError for a naive
        `since`, JournalError."""
        c = t.quota_usage.c
        query = (sa.select(c.user_key, c.bucket_start, c.bytes)
                 .where(c.bucket_start >= _bucket(aware(since, "since"))).order_by(c.bucket_start, c.user_key))
        with self._db.read() as conn:
            return [(str(k), at, int(n)) for k, at, n in conn.execute(query)]
