"""Transfer workers: a bounded thread pool that claims files from the journal and relays them.

One concurrency model (sync code, bounded threads): `transfers` threads each claim one item at a time
with a lease, renewed in the background while the file moves. Throttling is handled per call inside
each provider, so a throttled request sleeps in its own thread without stalling the others. A quota
stop (daily cap, --max-transfer) sets a shared event: every worker checkpoints and returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from driveferry.errors import (
    DriveferryError,
    IntegrityError,
    PermanentError,
    QuotaExceededError,
    TransientError,
    UploadSessionLostError,
)
from driveferry.migrate.destination import Destination
from driveferry.migrate.port import ClaimedItem, JournalPort
from driveferry.migrate.quota import QuotaStop, UploadBudget
from driveferry.migrate.relay import Relay, RelayJob

log = logging.getLogger(__name__)

INTEGRITY_ATTEMPTS = 3  # a corrupt stream is retried from byte 0 this many times before the item fails


class Progress:
    """Progress events (the CLI renders them with tqdm, or as JSON lines, or not at all)."""

    def file_started(self, path: str, size: int, resumed_from: int) -> None: ...

    def advance(self, path: str, nbytes: int) -> None: ...

    def file_finished(self, path: str, status: str) -> None: ...


@dataclass
class Tally:
    """Counts for the run summary (shared by the workers, guarded by a lock)."""

    copied: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_uploaded: int = 0
    resumed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for key, n in counts.items():
                setattr(self, key, getattr(self, key) + n)


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

    def run(self) -> Tally:
        threads = [threading.Thread(target=self._loop, name=f"transfer-{i}", daemon=True)
                   for i in range(self.s.transfers)]
        renewer = threading.Thread(target=self._renew_leases, name="lease-renewer", daemon=True)
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
            self.journal.release(self.s.worker_id)
        return self.tally

    def _renew_leases(self) -> None:
        while not self.stop.wait(max(0.5, self.s.lease_s / 3)):
            with self._active_lock:
                ids = list(self._active)
            if ids:
                self.journal.renew(self.s.worker_id, ids, self.s.lease_s)

    def _loop(self) -> None:
        while not self.stop.is_set():
            items = self.journal.claim(self.s.worker_id, self.s.lease_s, 1)
            if not items:
                if self.journal.unfinished_elsewhere(self.s.worker_id):
                    time.sleep(min(2.0, self.s.lease_s / 4))  # others hold leases; theirs may expire
                    continue
                return
            item = items[0]
            with self._active_lock:
                self._active.add(item.item_id)
            try:
                self._transfer(item)
            finally:
                with self._active_lock:
                    self._active.discard(item.item_id)

    def _transfer(self, item: ClaimedItem) -> None:
        entry = item.entry
        path = item.rel_path
        size = entry.size or 0
        try:
            parent, name, existing, taken = self.dest.prepare(path, entry)
            if existing is not None:
                self.journal.complete(item.item_id, existing.id, dict(existing.hashes), 0, skipped=True)
                self.tally.add(skipped=1)
                self.progress.file_finished(path, "skipped")
                return
            remaining = size - (item.committed_offset if item.session_token else 0)
            self.budget.reserve(max(0, remaining))
            token = item.session_token
            for attempt in range(1, INTEGRITY_ATTEMPTS + 1):
                job = RelayJob(entry, parent, name, self.s.run_id, self.s.chunk_size, token, replace=taken)
                self.progress.file_started(path, size, item.committed_offset if token else 0)
                try:
                    result = self.relay.copy(
                        job, lambda tok, off: self._checkpoint(item, tok, off),
                        lambda n: self.progress.advance(path, n))
                    break
                except IntegrityError as exc:
                    log.warning("%s: %s (attempt %d of %d)", path, exc, attempt, INTEGRITY_ATTEMPTS)
                    self.journal.record_error(item.item_id, "integrity", str(exc), exc.expected, exc.actual)
                    token = None
                    if attempt == INTEGRITY_ATTEMPTS:
                        raise
                except UploadSessionLostError:
                    token = None
            self.dest.replaced(parent, name, entry, result.entry)
            self.journal.complete(item.item_id, result.entry.id, dict(result.hashes), result.bytes_uploaded)
            self.tally.add(copied=1, bytes_uploaded=result.bytes_uploaded, resumed=int(result.resumed_from > 0))
            self.progress.file_finished(path, "copied")
        except (QuotaStop, QuotaExceededError) as exc:
            self.quota_stop = exc if isinstance(exc, QuotaStop) else QuotaStop(str(exc), exc.resets_at)
            self.journal.release_item(item.item_id, self.s.worker_id)
            self.stop.set()
            self.progress.file_finished(path, "paused")
        except (TransientError, IntegrityError, PermanentError, DriveferryError) as exc:
            retryable = isinstance(exc, TransientError)
            kind = type(exc).__name__
            expected = getattr(exc, "expected", None)
            actual = getattr(exc, "actual", None)
            final = self.journal.fail(item.item_id, kind, str(exc), expected, actual, retryable)
            if final:
                with self.tally.lock:
                    self.tally.failed += 1
                    self.tally.failures.append((path, str(exc)))
            self.progress.file_finished(path, "failed" if final else "retry")

    def _checkpoint(self, item: ClaimedItem, token: str, offset: int) -> None:
        if not self.journal.checkpoint(item.item_id, self.s.worker_id, token, offset):
            # another worker took the item over (our lease expired): stop sending its bytes
            raise TransientError(f"{item.rel_path}: lease lost to another worker")


Clock = Callable[[], float]
