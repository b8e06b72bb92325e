"""Binds one migration run to the journal: the job, the run, and the JournalPort the workers use.

Items are stored by their path relative to the source root; the source Entry is rebuilt from the
journal row (id, size, modified, hashes), so claiming a file costs no request to the source.
"""

from __future__ import annotations

import os
import posixpath
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from driveferry.integrity.hashes import HashType
from driveferry.journal.records import Completion, ItemRecord, ItemState, LeaseLostError, PlannedItem
from driveferry.journal.store import Journal
from driveferry.migrate.plan import Planned
from driveferry.migrate.port import ClaimedItem, Finished
from driveferry.migrate.settings import MigrateSettings
from driveferry.providers.base import Entry, Kind

MAX_ATTEMPTS = 5
CHANGE_STAMP = "change_stamp"  # kept with the source hashes in the journal (not a HashType)
# kept with a copy's dest hashes (not a HashType): the types taken from the destination's answer, not streamed
FROM_DEST = "from_dest"


def _recorded(done: Finished) -> dict[str, str]:
    """A finished copy's dest hashes as the journal keeps them, with FROM_DEST naming (comma-separated)
    those taken from the destination's answer rather than streamed."""
    out = {str(k): v for k, v in done.dest_hashes.items()}
    if done.from_dest:
        out[FROM_DEST] = ",".join(sorted(k.value for k in done.from_dest))
    return out


def _hashes(raw: Mapping[str, str]) -> Mapping[HashType, str]:
    out = {}
    for key, value in raw.items():
        try:
            out[HashType(key)] = value
        except ValueError:
            continue
    return MappingProxyType(out)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_CLAIMED_KINDS = frozenset({Kind.FILE.value, Kind.NATIVE_DOC.value})


class JobPort:
    """The JournalPort of one run (see migrate/port.py), plus planning and run bookkeeping."""

    def __init__(self, journal: Journal, job_id: int, run_id: str, worker_id: str, src_root_path: str) -> None:
        self.journal = journal
        self.job_id = job_id
        self.run_id = run_id
        self.worker_id = worker_id
        self.src_root_path = src_root_path.strip("/")

    @classmethod
    def open(cls, journal: Journal, settings: MigrateSettings, src_root_path: str) -> JobPort:
        """Find or create the job for (source, destination) and start a run of this worker."""
        job = journal.get_or_create_job(settings.source, settings.destination)
        run = journal.start_run(job.id, settings.worker_id, settings.redacted())
        port = cls(journal, job.id, run.id, settings.worker_id, src_root_path)
        port._release_dead()
        # running the command again is how a user says "try again": failed files get fresh attempts
        # (their errors stay in the journal as evidence)
        journal.requeue(job.id, (ItemState.FAILED,))
        return port

    def _release_dead(self) -> None:
        """Take back at once the leases of workers that provably died on this machine (a killed relay
        run again in the same place), instead of waiting for their leases to expire. Workers elsewhere,
        or still running here, keep theirs."""
        owners = {item.lease_owner for item in self.journal.iter_items(self.job_id, ItemState.IN_PROGRESS)}
        owners -= {None, self.worker_id}
        if not owners:
            return
        here = socket.gethostname()
        known = {w.worker_id: w for w in self.journal.workers(self.job_id)}
        for owner in owners:
            w = known.get(str(owner))
            if w is not None and w.host == here and not _pid_alive(w.pid):
                self.journal.release(str(owner))

    # --- planning ------------------------------------------------------------------------------------

    def plan(self, items: Iterable[Planned]) -> None:
        """Store the plan (streaming). Filtered items are not stored; unsupported ones are marked."""
        unsupported: list[tuple[str, str]] = []

        def rows() -> Iterator[PlannedItem]:
            for p in items:
                if p.action == "filtered":
                    continue
                if p.action == "unsupported":
                    unsupported.append((p.rel_path, p.reason))
                e = p.entry
                hashes = {str(k): v for k, v in e.hashes.items()}
                if e.change_stamp:  # compared like a hash on the next plan; dropped when read back
                    hashes[CHANGE_STAMP] = e.change_stamp
                yield PlannedItem(path=p.rel_path, source_id=e.id, kind=str(e.kind), size_bytes=e.size,
                                  modified=e.modified, hashes=hashes, created=e.created)

        self.journal.plan_items(self.job_id, rows())
        for path, reason in unsupported:
            item = self.journal.find_item(self.job_id, path)
            if item is not None and item.state is not ItemState.UNSUPPORTED:
                self.journal.mark(item.id, ItemState.UNSUPPORTED, reason)

    def remaining(self) -> tuple[int, int]:
        """(files, bytes) still to send: unfinished items' sizes less what they already committed."""
        totals = self.journal.counts(self.job_id)
        open_states = (ItemState.PENDING, ItemState.IN_PROGRESS)
        files = sum(totals[s].items for s in open_states)
        nbytes = sum(totals[s].size_bytes - totals[s].bytes_done for s in open_states)
        return files, max(0, nbytes)

    # --- the JournalPort -----------------------------------------------------------------------------

    def _claimed(self, rec: ItemRecord) -> ClaimedItem:
        path = posixpath.join(self.src_root_path, rec.path) if self.src_root_path else rec.path
        entry = Entry(id=rec.source_id, path=path, name=posixpath.basename(rec.path), kind=Kind(rec.kind),
                      size=rec.size_bytes, modified=rec.modified, hashes=_hashes(rec.source_hashes),
                      created=rec.source_created)
        return ClaimedItem(rec.id, rec.path, entry, rec.session_token, rec.committed_offset or 0, rec.attempts,
                           rec.taken_over)

    def claim(self, worker_id: str, lease_s: float, limit: int, max_bytes: int | None = None) -> Sequence[ClaimedItem]:
        # the journal marks items whose previous worker's lease expired as taken over; native documents
        # still pending are the ones planned for export (the others are marked unsupported)
        return [self._claimed(r) for r in self.journal.claim(self.job_id, worker_id, lease_s, limit,
                                                              kinds=_CLAIMED_KINDS, max_bytes=max_bytes)]

    def renew(self, worker_id: str, item_ids: Sequence[int], lease_s: float) -> None:
        self.journal.renew(worker_id, item_ids, lease_s)

    def checkpoint(self, item_id: int, worker_id: str, token: str, offset: int) -> bool:
        try:
            self.journal.checkpoint(item_id, worker_id, token, offset)
        except LeaseLostError:
            return False
        return True

    def checkpoint_many(self, worker_id: str, points: Sequence[tuple[int, str | None, int]]) -> set[int]:
        """Record several items' sessions in one journal transaction; the ids whose lease held."""
        return set(self.journal.checkpoint_many(worker_id, points))

    def complete(self, done: Sequence[Finished]) -> None:
        self.journal.complete_many([Completion(d.item_id, d.dest_id, _recorded(d), d.nbytes) for d in done])

    def fail(self, item_id: int, kind: str, message: str, expected: str | None, actual: str | None,
             retryable: bool, reset_session: bool = False) -> bool:
        try:
            state = self.journal.fail(item_id, kind, message, retryable=retryable, expected=expected,
                                      actual=actual, worker_id=self.worker_id, run_id=self.run_id,
                                      max_attempts=MAX_ATTEMPTS, reset_session=reset_session)
        except LeaseLostError:
            return False
        return state is ItemState.FAILED

    def release(self, worker_id: str) -> None:
        self.journal.release(worker_id)

    def unfinished_elsewhere(self, worker_id: str) -> bool:
        return any(i.lease_owner not in (None, worker_id)
                   for i in self.journal.iter_items(self.job_id, ItemState.IN_PROGRESS))

    def claimable(self) -> bool:
        return bool(self.journal.claimable(self.job_id, kinds=_CLAIMED_KINDS))

    def heartbeat(self, bytes_done: int, rate: float, current: int | None) -> None:
        self.journal.heartbeat(self.worker_id, job_id=self.job_id, host=socket.gethostname(), pid=os.getpid(),
                               run_id=self.run_id, current_item_id=current, bytes_done=bytes_done,
                               rate_bytes_per_s=rate)

    # --- the FolderLedger ----------------------------------------------------------------------------

    def folder_id(self, path: str) -> str | None:
        return self.journal.dest_folder(self.job_id, path)

    def settle_folder(self, path: str, folder_id: str) -> str:
        return self.journal.settle_dest_folder(self.job_id, path, folder_id)

    def replace_folder(self, path: str, old_id: str, new_id: str) -> str:
        return self.journal.replace_dest_folder(self.job_id, path, old_id, new_id)

    # --- budget and bookkeeping ----------------------------------------------------------------------

    def uploaded_since(self, user_key: str, since: datetime) -> tuple[int, datetime | None]:
        usage = self.journal.uploaded_since(user_key, since)
        return usage.bytes_in_window, usage.oldest

    def record_upload(self, user_key: str, nbytes: int, at: datetime) -> None:
        self.journal.record_upload(user_key, nbytes, at)

    def previous_value(self, key: str) -> Any:
        """`key` from the summary of this job's latest finished run that recorded it (None if none)."""
        for run in reversed(self.journal.runs(self.job_id)):
            if run.id != self.run_id and run.finished_at is not None and run.summary and key in run.summary:
                return run.summary[key]
        return None

    def finish(self, summary: Mapping[str, Any]) -> None:
        self.journal.finish_run(self.run_id, summary)
