"""Transfer workers: a bounded thread pool that claims files from the journal and relays them.

One concurrency model (sync code, bounded threads): `transfers` threads claim items with a lease
(small files a batch at a time), renewed in the background while the files move. Throttling and 5xx
are waited out by the providers' retry layer (providers/retrying.py), paced per remote; such an error
that still reaches a worker (it outlasted the layer's give-up time) spends no attempt: the file goes
to the back of the worker's queue and continues from its checkpoint. Only errors that waiting cannot
clear (integrity, permission, not found, permanent) count against a file's attempts. A quota stop
(daily cap, --max-transfer) sets a shared event: every worker checkpoints and returns.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace

from driveferry.errors import (
    DriveferryError,
    IntegrityError,
    PermanentError,
    QuotaExceededError,
    TransientError,
    UploadSessionLostError,
)
from driveferry.migrate.destination import Destination
from driveferry.migrate.port import ClaimedItem, Finished, JournalPort
from driveferry.migrate.quota import QuotaStop, UploadBudget, quota_stop_of
from driveferry.migrate.relay import Relay, RelayJob
from driveferry.providers.base import UploadMeta

log = logging.getLogger(__name__)

CLAIM_BATCH = 32
# An empty claim while files are still claimable met a concurrent claim's row locks (journal.leases
# `claimable`): try again after this long, rather than end the run (a worker that ended there left the
# whole job to the claimer, and to nobody when that one was killed: tests/migrate/test_workers.py).
CLAIM_RETRY_S = 0.05
FLUSH_EVERY_S = 2.0  # finished files wait at most this long (or until the batch ends) to be recorded


class LeaseLost(Exception):
    """This worker's lease on the item expired and another worker owns it now: drop the item."""


class _TryAgain(Exception):
    """The file met an error that can clear by waiting: keep its lease and try it again later."""


class Progress:
    """Progress events (the CLI renders them with tqdm, or as JSON lines, or not at all)."""

    def file_started(self, path: str, size: int, resumed_from: int) -> None: ...

    def advance(self, path: str, nbytes: int) -> None: ...

    def file_finished(self, path: str, status: str) -> None: ...

    def found_there(self, path: str, nbytes: int) -> None:
        """A file found already on the destination: the `nbytes` it still had to send need no sending."""


@dataclass
class Tally:
    """Counts for the run summary (shared by the workers, guarded by a lock)."""

    copied: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_uploaded: int = 0
    resumed: int = 0
    unverified: int = 0  # copied, but no content hash agreed on each side (integrity/proof.py)
    failures: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for key, n in counts.items():
                setattr(self, key, getattr(self, key) + n)


BEAT_MIN_S = 1.0  # fewest seconds between heartbeats sent on committed chunks


@dataclass(frozen=True)
class WorkerSettings:
    transfers: int
    chunk_size: int
    lease_s: float
    run_id: str
    worker_id: str


class Workers:
    """Runs the transfer phase of one migration for one process."""

    def __init__(self, journal: JournalPort, relay: Relay, dest: Destination, budget: UploadBudget,
                 settings: WorkerSettings, progress: Progress) -> None:
        self.journal = journal
        self.relay = relay
        self.dest = dest
        self.budget = budget
        self.s = settings
        self.progress = progress
        self.tally = Tally()
        self.stop = threading.Event()
        self.quota_stop: QuotaStop | None = None
        self._active: set[int] = set()
        self._active_lock = threading.Lock()
        self._started = time.monotonic()
        self._checkpoints: dict[int, tuple[str, int]] = {}  # item id -> (token, offset) last recorded
        # bytes streamed to the destination by this process, counted per chunk: the heartbeat shows
        # them while a file is in flight (the tally counts a file only once it is finished)
        self._streamed_bytes = 0
        self._beat = (0.0, 0)  # (monotonic time, bytes) of the last heartbeat
        self._reserved: dict[int, str] = {}  # item id -> one-request upload token already in the journal

    def run(self) -> Tally:
        threads = [threading.Thread(target=self._loop, name=f"transfer-{i}", daemon=True)
                   for i in range(self.s.transfers)]
        renewer = threading.Thread(target=self._renew_leases, name="lease-renewer", daemon=True)
        self._started = time.monotonic()
        self._heartbeat(None)  # visible to `status` from the start
        renewer.start()
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(timeout=0.2)
        except KeyboardInterrupt:
            self.stop.set()
            for t in threads:
                t.join(timeout=30)
            raise
        finally:
            self.stop.set()
            renewer.join(timeout=5)
            self._unreserve()
            self.journal.release(self.s.worker_id)
            self._heartbeat(None)  # the final figures: work done since the last beat would not show
        return self.tally

    def _heartbeat(self, current: int | None) -> None:
        sent = self._streamed_bytes
        self._beat = (time.monotonic(), sent)
        self.journal.heartbeat(sent, sent / max(1e-6, time.monotonic() - self._started), current)

    def _renew_leases(self) -> None:
        while not self.stop.wait(max(0.5, self.s.lease_s / 3)):
            with self._active_lock:
                ids = list(self._active)
            if ids:
                self.journal.renew(self.s.worker_id, ids, self.s.lease_s)
            self._heartbeat(ids[0] if ids else None)

    def _claim(self) -> list[ClaimedItem]:
        """Claim a batch: up to CLAIM_BATCH files but no more than one chunk's worth of bytes. Small files
        come many at a time, which cuts the journal round trips per file; a file larger than a chunk
        comes alone, so large files spread over all threads and workers."""
        return list(self.journal.claim(self.s.worker_id, self.s.lease_s, CLAIM_BATCH, self.s.chunk_size))

    def _loop(self) -> None:
        queue: list[ClaimedItem] = []
        done: list[Finished] = []
        flushed = time.monotonic()
        try:
            while not self.stop.is_set():
                if done and (not queue or time.monotonic() - flushed > FLUSH_EVERY_S):
                    self._flush(done)
                    flushed = time.monotonic()
                if not queue:
                    queue = self._claim()
                    if not queue:
                        if self.journal.claimable():  # a concurrent claim holds them locked: it commits soon
                            time.sleep(CLAIM_RETRY_S)
                            continue
                        if self.journal.unfinished_elsewhere(self.s.worker_id):
                            time.sleep(min(2.0, self.s.lease_s / 4))  # others hold leases; theirs may expire
                            continue
                        return
                    with self._active_lock:
                        self._active.update(i.item_id for i in queue)
                    self._prefetch(queue)
                    self._reserve(queue)
                item = queue.pop(0)
                finished = None
                again = False
                try:
                    finished = self._transfer(item)
                except _TryAgain:
                    again = True
                    queue.append(self._continued(item))  # still leased: behind the others in hand
                finally:
                    if finished is not None:
                        done.append(finished)  # its lease is renewed until the journal records it
                    elif not again:
                        self._checkpoints.pop(item.item_id, None)
                        with self._active_lock:
                            self._active.discard(item.item_id)
        finally:
            # stopped (quota, Ctrl-C) or out of work: record what is done; items still queued go back
            # to pending with the final release()
            self._flush(done)

    def _prefetch(self, queue: list[ClaimedItem]) -> None:
        """Ready the batch's downloads in a few requests where the source can (Graph: the download URLs
        the listing gave have expired by a file's turn in a long run; 20 per `$batch` instead of a
        `/content` call per file). A file left out asks for its own."""
        prefetch = self.relay.src.features.prefetch
        if prefetch is not None and len(queue) > 1:
            try:  # a throttled sub-request is waited out by the retry layer, as a /content call would be
                prefetch.prefetch([item.entry for item in queue])
            except DriveferryError as exc:
                log.info("download URLs of a batch: %s; each file asks for its own", exc)

    def _reserve(self, queue: list[ClaimedItem]) -> None:
        """Record the upload tokens of a claimed batch's small new files in one journal transaction.

        A file sent in one request to a destination that names it by an id chosen first (Drive:
        generateIds, then a multipart create under that id) has its token, which names the id, in
        the journal before its bytes go: a worker that takes it over after a crash asks for the file
        by that id, which does not lag the way listings do (api-notes Part C §20), so it makes no
        twin. Recording the batch's tokens together saves a journal transaction per small file; a
        token whose file was never sent is found absent by that id, and the file starts afresh."""
        limit = min(self.dest.provider.features.one_request_ids, self.s.chunk_size)
        points: list[tuple[int, str, int]] = []
        tokens: dict[int, str] = {}
        for item in queue:
            size = item.entry.size or 0
            if item.session_token is not None or item.taken_over or not 0 < size <= limit:
                continue
            try:
                parent, name, existing, taken = self.dest.prepare(item.rel_path, item.entry)
                if existing is not None or taken:
                    continue
                token = self.dest.provider.begin_upload(parent, name, size, UploadMeta(one_send=True)).token
            except DriveferryError:
                continue  # the transfer meets it again, and handles it there
            points.append((item.item_id, token, 0))
            tokens[item.item_id] = token
        if points:
            for item_id in self.journal.checkpoint_many(self.s.worker_id, points):
                self._reserved[item_id] = tokens[item_id]

    def _unreserve(self) -> None:
        """Forget the reserved tokens of files a stopped run never sent (quota, Ctrl-C), so the next
        run starts them afresh instead of asking Drive for ids nothing was created under."""
        left = [(item_id, None, 0) for item_id in list(self._reserved)]
        if left:
            self.journal.checkpoint_many(self.s.worker_id, left)
            self._reserved.clear()

    def _flush(self, done: list[Finished]) -> None:
        """Record finished files in one journal transaction (one per claimed batch, not one per file).

        Until then a crash loses only the record, never the copy: the next run finds the file on the
        destination by its provenance and skips it."""
        if not done:
            return
        self.journal.complete(done)
        with self._active_lock:
            self._active.difference_update(d.item_id for d in done)
        done.clear()

    def _transfer(self, item: ClaimedItem) -> Finished | None:
        """Copy one file; returns what to record when it is on the destination (None otherwise)."""
        entry = item.entry
        path = item.rel_path
        size = entry.size or 0
        token = item.session_token
        try:
            # an item someone started before (its session is in the journal) may be on the destination
            # already without a record: look afresh, by provenance too
            fresh = item.taken_over or token is not None
            parent, name, existing, taken = self.dest.prepare(path, entry, fresh=fresh)
            if existing is not None:
                self._reserved.pop(item.item_id, None)
                self.tally.add(skipped=1)
                self.progress.found_there(path, max(0, size - (item.committed_offset if token else 0)))
                self.progress.file_finished(path, "skipped")
                return Finished(item.item_id, existing.id, dict(existing.hashes),
                                existing.size if existing.size is not None else size)
            self.budget.admit(max(0, size - (item.committed_offset if token else 0)))
            reserved = self._reserved.pop(item.item_id, None)  # left in place by a stop before this file
            job = RelayJob(entry, parent, name, self.s.run_id, self.s.chunk_size, token, replace=taken,
                           reserved_token=reserved)
            self.progress.file_started(path, size, item.committed_offset if token else 0)
            result = self.relay.copy(job, lambda tok, off: self._checkpoint(item, tok, off),
                                     lambda n: self._sent(path, n))
            self.dest.replaced(parent, name, entry, result.entry)
            self.tally.add(copied=1, bytes_uploaded=result.bytes_uploaded, resumed=int(result.resumed_from > 0),
                           unverified=int(not result.proven))
            self.progress.file_finished(path, "copied")
            # an unverified copy records no destination hash, so `status` counts it unverified
            return Finished(item.item_id, result.entry.id,
                            {**result.hashes, **result.from_dest} if result.proven else {},
                            result.entry.size if result.entry.size is not None else size,
                            frozenset(result.from_dest) if result.proven else frozenset())
        except (QuotaStop, QuotaExceededError) as exc:
            # the item keeps its session and offset; the final release() returns it to pending. Files
            # already uploading finish (Drive lets them: api-notes Part C §19); no new one starts.
            self.quota_stop = exc if isinstance(exc, QuotaStop) else quota_stop_of(exc)
            self.stop.set()
            self.progress.file_finished(path, "paused")
        except LeaseLost:
            self.progress.file_finished(path, "taken over")
        except TransientError as exc:
            # a throttle or 5xx that outlasted the retry layer's give-up time: waiting can clear it, so
            # it spends no attempt (the layer has waited already; the file comes round again later)
            log.warning("%s: %s; trying it again later (no attempt spent)", path, exc)
            self.progress.file_finished(path, "retry")
            raise _TryAgain(path) from exc
        except IntegrityError as exc:
            # nothing was committed (or the bad copy was deleted): start the file over, up to the
            # journal's attempt limit, with both hashes kept as evidence
            log.warning("%s: %s", path, exc)
            self._failed(item, exc, retryable=True, reset_session=True)
        except UploadSessionLostError as exc:
            self._failed(item, exc, retryable=True, reset_session=True)
        except DriveferryError as exc:
            self._failed(item, exc, retryable=isinstance(exc, TransientError))
        except Exception as exc:  # a bug or an untranslated library error: fail this file, keep the run
            log.exception("%s: unexpected error", path)
            self._failed(item, PermanentError(f"unexpected {type(exc).__name__}: {exc}"), retryable=True)
        return None

    def _failed(self, item: ClaimedItem, exc: DriveferryError, retryable: bool, reset_session: bool = False) -> None:
        final = self.journal.fail(item.item_id, type(exc).__name__, str(exc), getattr(exc, "expected", None),
                                  getattr(exc, "actual", None), retryable, reset_session)
        if final:
            with self.tally.lock:
                self.tally.failed += 1
                self.tally.failures.append((item.rel_path, str(exc)))
        self.progress.file_finished(item.rel_path, "failed" if final else "retry")

    def _sent(self, path: str, nbytes: int) -> None:
        self.budget.sent(nbytes)
        with self._active_lock:
            self._streamed_bytes += nbytes
        self.progress.advance(path, nbytes)

    def _continued(self, item: ClaimedItem) -> ClaimedItem:
        """`item` as its last checkpoint left it (token and offset), to continue where it stopped."""
        last = self._checkpoints.get(item.item_id)
        if last is None:
            return item
        return replace(item, session_token=last[0], committed_offset=last[1])

    def _checkpoint(self, item: ClaimedItem, token: str, offset: int) -> None:
        self._checkpoints[item.item_id] = (token, offset)
        if not self.journal.checkpoint(item.item_id, self.s.worker_id, token, offset):
            # another worker took the item over (our lease expired): stop sending its bytes
            raise LeaseLost(item.rel_path)
        # A worker killed between two lease-renewal beats would show none of its bytes: beat on a
        # committed chunk too, at most every BEAT_MIN_S (the first committed bytes at once).
        at, sent = self._beat
        if sent == 0 or time.monotonic() - at >= BEAT_MIN_S:
            self._heartbeat(item.item_id)

