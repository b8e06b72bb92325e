"""The transfer journal: jobs, runs and the planned items of each job, in SQLite or PostgreSQL.

`Journal.open` is the entry point. The same command on a fresh relay VM opens the same journal, finds
the same job (`get_or_create_job`) and resumes it; several workers share one job through PostgreSQL
(or one SQLite file on one machine). Work distribution lives in leases.py, reads and the upload budget
in status.py; `Journal` gathers them into one object, safe to share between threads.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from itertools import islice
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

import driveferry
from driveferry.errors import JournalError
from driveferry.journal import schema as t
from driveferry.journal.convert import AnyRow, Clock, aware, dump_json, load_json, to_job, to_run, utc_now
from driveferry.journal.db import Database, to_url
from driveferry.journal.leases import LeaseOps
from driveferry.journal.records import ItemState, JobRecord, PlannedItem, PlanResult, RunRecord
from driveferry.journal.status import StatusOps

_FOLDER = "folder"


class Journal(LeaseOps, StatusOps):
    """One journal database. Open with `Journal.open`; close with `close()` or a `with` block.

    Every method raises JournalError (one line, naming the problem and the fix) when the database
    fails; the lease methods also raise LeaseLostError, a JournalError.
    """

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    @classmethod
    def open(cls, url_or_path: str, *, clock: Clock | None = None, pool_size: int = 10) -> Journal:
        """Open (creating or upgrading its tables) the journal at a path or URL.

        A plain path is an SQLite file (parent directories are created); `sqlite:///PATH` likewise;
        `postgresql://USER:PASSWORD@HOST:PORT/DB` (or `postgres://`) uses psycopg 3. `clock` returns
        the current UTC time (tests pass a fake one). `pool_size` should cover the caller's threads.

        Raises UserError for an unsupported URL scheme; JournalError when the database cannot be
        reached or read, is not a journal or is corrupt, or was written by a newer driveferry.
        """
        db = Database(to_url(url_or_path), pool_size=pool_size)
        try:
            with db.write() as conn:
                t.ensure_schema(conn, db.label, f"driveferry {driveferry.__version__}")
        except BaseException:
            db.dispose()
            raise
        return cls(db, clock or utc_now)

    @property
    def label(self) -> str:
        """Where the journal is, for messages (never includes a password)."""
        return self._db.label

    @property
    def dialect(self) -> str:
        """"sqlite" or "postgresql"."""
        return self._db.dialect

    def close(self) -> None:
        """Close the pooled connections. The journal must not be used afterwards."""
        self._db.dispose()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def schema_version(self) -> int:
        """The journal's schema version (t.SCHEMA_VERSION once opened). Raises JournalError."""
        with self._db.read() as conn:
            return t.current_version(conn) or 0

    # --- jobs and runs -------------------------------------------------------------------------------

    def get_or_create_job(self, source_spec: str, dest_spec: str) -> JobRecord:
        """The job for this (source, destination) pair, created on first use; safe when several workers
        start at once. Raises JournalError."""
        c = t.jobs.c
        insert = (self._db.insert(t.jobs)
                  .values(source_spec=source_spec, dest_spec=dest_spec, created_at=self._now())
                  .on_conflict_do_nothing(index_elements=[c.source_spec, c.dest_spec]))
        with self._db.write() as conn:
            conn.execute(insert)
            row = conn.execute(sa.select(t.jobs).where(c.source_spec == source_spec,
                                                       c.dest_spec == dest_spec)).one()
        return to_job(row)

    def find_job(self, source_spec: str, dest_spec: str) -> JobRecord | None:
        """The job for this pair, or None (status must not create jobs). Raises JournalError."""
        c = t.jobs.c
        with self._db.read() as conn:
            row = conn.execute(sa.select(t.jobs).where(c.source_spec == source_spec,
                                                       c.dest_spec == dest_spec)).first()
        return None if row is None else to_job(row)

    def jobs(self) -> list[JobRecord]:
        """Every job in the journal, oldest first. Raises JournalError."""
        with self._db.read() as conn:
            return [to_job(r) for r in conn.execute(sa.select(t.jobs).order_by(t.jobs.c.id))]

    def start_run(self, job_id: int, worker_id: str, options: Mapping[str, Any] | None = None) -> RunRecord:
        """Record the start of one invocation with its (JSON-able, secret-free) options.

        Returns the run with a new uuid4 id. Raises JournalError (also for an unknown job).
        """
        values = {"id": str(uuid.uuid4()), "job_id": job_id, "worker_id": worker_id,
                  "started_at": self._now(), "options": dump_json(options or {})}
        with self._db.write() as conn:
            conn.execute(sa.insert(t.runs).values(**values))
            row = conn.execute(sa.select(t.runs).where(t.runs.c.id == values["id"])).one()
        return to_run(row)

    def finish_run(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """Record the end of a run and its (JSON-able) summary. Raises JournalError (unknown run too)."""
        with self._db.write() as conn:
            result = conn.execute(sa.update(t.runs).where(t.runs.c.id == run_id)
                                  .values(finished_at=self._now(), summary=dump_json(summary)))
        if result.rowcount == 0:
            raise JournalError(f"journal {self.label}: no run {run_id}")

    def runs(self, job_id: int) -> list[RunRecord]:
        """The job's runs, oldest first. Raises JournalError."""
        c = t.runs.c
        with self._db.read() as conn:
            rows = conn.execute(sa.select(t.runs).where(c.job_id == job_id).order_by(c.started_at, c.id))
            return [to_run(r) for r in rows]

    # --- destination folders -------------------------------------------------------------------------

    def dest_folders(self, job_id: int) -> dict[str, str]:
        """{path: folder id} of every destination folder the job recorded. Raises JournalError."""
        c = t.dest_folders.c
        with self._db.read() as conn:
            return {str(r.path): str(r.folder_id)
                    for r in conn.execute(sa.select(c.path, c.folder_id).where(c.job_id == job_id))}

    def dest_folder(self, job_id: int, path: str) -> str | None:
        """The folder id the job recorded for `path`, or None. Raises JournalError."""
        c = t.dest_folders.c
        with self._db.read() as conn:
            found = conn.scalar(sa.select(c.folder_id).where(c.job_id == job_id, c.path == path))
        return None if found is None else str(found)

    def settle_dest_folder(self, job_id: int, path: str, folder_id: str) -> str:
        """Record `folder_id` as the job's folder at `path` unless one is recorded already; returns the
        recorded one (the first worker to record a path wins, on both databases). Raises JournalError."""
        c = t.dest_folders.c
        insert = (self._db.insert(t.dest_folders)
                  .values(job_id=job_id, path=path, folder_id=folder_id, recorded_at=self._now())
                  .on_conflict_do_nothing(index_elements=[c.job_id, c.path]))
        with self._db.write() as conn:
            conn.execute(insert)
            return str(conn.scalar(sa.select(c.folder_id).where(c.job_id == job_id, c.path == path)))

    def replace_dest_folder(self, job_id: int, path: str, old_id: str, new_id: str) -> str:
        """Record `new_id` for `path` if `old_id` is still recorded there (the folder was deleted on the
        destination); returns the recorded one, which another worker may have replaced first."""
        c = t.dest_folders.c
        where = (c.job_id == job_id, c.path == path)
        with self._db.write() as conn:
            conn.execute(sa.update(t.dest_folders).where(*where, c.folder_id == old_id)
                         .values(folder_id=new_id, recorded_at=self._now()))
            return str(conn.scalar(sa.select(c.folder_id).where(*where)))

    # --- planning ------------------------------------------------------------------------------------

    def item_states(self, job_id: int, paths: Iterable[str]) -> dict[str, ItemState]:
        """The state of each of `paths` the job holds (absent paths are left out): one query per call,
        so callers pass a batch (--dry-run passes 500 at a time). Raises JournalError."""
        c = t.items.c
        wanted = list(paths)
        if not wanted:
            return {}
        with self._db.read() as conn:
            rows = conn.execute(sa.select(c.path, c.state).where(c.job_id == job_id, c.path.in_(wanted)))
            return {row.path: ItemState(row.state) for row in rows}

    def plan_items(self, job_id: int, items: Iterable[PlannedItem], *, batch_size: int = 500) -> PlanResult:
        """Upsert the source tree into the job, streaming: `items` is consumed `batch_size` at a time,
        one transaction per batch, so the tree is never held in memory.

        A new path is added as pending. A known path whose source is unchanged keeps its state (a done
        item stays done). A changed source (kind, size, modified time, or a hash both sides know; for
        folders only the kind) goes back to pending with attempts 0, its upload session and lease
        dropped (the worker holding it gets LeaseLostError) and its old `dest_id` kept to replace.
        Within one batch the last sighting of a path wins. Paths missing from `items` are left alone.

        Returns counts of added, changed and unchanged paths. Raises ValueError for a naive
        `modified`, JournalError.
        """
        total = PlanResult()
        for batch in _batches(items, batch_size):
            with self._db.write() as conn:
                done = self._plan_batch(conn, job_id, {item.path: item for item in batch})
            total = PlanResult(total.added + done.added, total.changed + done.changed,
                               total.unchanged + done.unchanged)
        return total

    def _plan_batch(self, conn: Connection, job_id: int, batch: dict[str, PlannedItem]) -> PlanResult:
        now = self._now()
        c = t.items.c
        query = (sa.select(c.id, c.path, c.source_id, c.kind, c.size_bytes, c.modified, c.source_hashes)
                 .where(c.job_id == job_id, c.path.in_(list(batch))).with_for_update())
        existing = {row.path: row for row in conn.execute(query)}
        new_rows: list[dict[str, Any]] = []
        changed = unchanged = 0
        for path, item in batch.items():
            modified = aware(item.modified, f"modified of {path}") if item.modified else None
            hashes = {str(k): v for k, v in item.hashes.items()}
            created = aware(item.created, f"created of {path}") if item.created else None
            source = {"source_id": item.source_id, "kind": item.kind, "size_bytes": item.size_bytes,
                      "modified": modified, "source_created": created, "updated_at": now}
            row = existing.get(path)
            if row is None:
                new_rows.append({**source, "job_id": job_id, "path": path,
                                 "source_hashes": dump_json(hashes), "state": ItemState.PENDING.value})
                continue
            old_hashes: dict[str, str] = load_json(row.source_hashes) or {}
            if _source_changed(row, item, modified, old_hashes, hashes):
                changed += 1
                conn.execute(sa.update(t.items).where(c.id == row.id).values(
                    **source, source_hashes=dump_json(hashes), state=ItemState.PENDING.value, reason=None,
                    attempts=0, dest_hashes="{}", bytes_done=0, session_token=None, committed_offset=None,
                    session_started_at=None, lease_owner=None, lease_expires_at=None))
                continue
            unchanged += 1
            merged = {**old_hashes, **hashes}  # a listing may omit a hash it reported before
            if row.source_id != item.source_id or merged != old_hashes:
                conn.execute(sa.update(t.items).where(c.id == row.id).values(
                    source_id=item.source_id, source_hashes=dump_json(merged), updated_at=now))
        if new_rows:
            # DO NOTHING: another worker planning the same job may have inserted the path meanwhile.
            insert = self._db.insert(t.items).on_conflict_do_nothing(index_elements=[c.job_id, c.path])
            conn.execute(insert, new_rows)
        return PlanResult(added=len(new_rows), changed=changed, unchanged=unchanged)


def _source_changed(row: AnyRow, item: PlannedItem, modified: datetime | None,
                    old_hashes: Mapping[str, str], new_hashes: Mapping[str, str]) -> bool:
    if row.kind != item.kind:
        return True
    if item.kind == _FOLDER:
        # A folder's modified time moves whenever a child changes; the children carry that change.
        return False
    if row.size_bytes != item.size_bytes or row.modified != modified:
        return True
    return any(old_hashes[k] != v for k, v in new_hashes.items() if k in old_hashes)


def _batches(items: Iterable[PlannedItem], size: int) -> Iterator[list[PlannedItem]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
