"""The daily upload budget: Drive's ~750 GB per user per rolling 24 h, plus `--max-transfer` per run.

The budget is kept in the journal (all workers writing as the same destination user share it): a
worker asks `admit(n)` before a file starts and counts its bytes with `sent(n)` as they go. When the
budget is spent, or the destination answers with its own cap error, no new file starts: the run
checkpoints and stops with exit code 3, or with `--wait-for-quota` waits (`quota_wait_s`) and carries
on. A full destination (storage quota) stops the run with its own message; waiting cannot clear it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from driveferry.errors import QuotaExceededError

WINDOW = timedelta(hours=24)
DRIVE_DAILY_CAP_BYTES = 750 * 10**9
# The destination refused a new upload for its cap and said nothing of when it frees up (Drive sends
# no Retry-After): look again after this long, in the remote's own time (divided by its time_scale).
CAP_POLL = timedelta(hours=1)


class QuotaStop(Exception):
    """The run must stop (or wait) for quota; `resets_at` is when budget frees up, if known.

    `kind`: "daily_upload" (waiting helps), "max_transfer" (this run's own limit) or "storage" (the
    destination is full: only freeing space helps).
    """

    def __init__(self, reason: str, resets_at: datetime | None, kind: str = "daily_upload") -> None:
        super().__init__(reason)
        self.reason = reason
        self.resets_at = resets_at
        self.kind = kind

    @property
    def waitable(self) -> bool:
        return self.kind == "daily_upload"


@dataclass(frozen=True)
class Usage:
    """Uploads recorded in the window: total bytes and the time of the oldest record still counted."""

    bytes_in_window: int
    oldest: datetime | None


class UploadBudget:
    """Rolling-window byte budget backed by the journal, counted the way Drive counts it.

    Drive lets an upload that crosses the cap finish and refuses only the uploads that start after
    it ("Uploads that are in progress will complete", Google admin help 172541; api-notes Part C
    §19), and takes files up to 5 TB. So `admit(nbytes)` lets a file start while the window still
    holds less than the cap, however large the file; its bytes are counted by `sent(n)` as they go.
    `max_transfer_bytes` limits this run alone and is strict: a file that would not fit does not start.

    usage(since) returns what the journal recorded for this destination user since `since`;
    record(nbytes, at) adds to it. `limit_bytes` None means no daily cap (e.g. local destinations).

    Bytes are recorded in batches (`flush_bytes` or `flush_s`, whichever comes first, and at
    `flush()`); between flushes the check adds this process's unflushed bytes to the journal's
    figure, so nothing is under-counted.
    """

    def __init__(self, usage: Callable[[datetime], Usage], record: Callable[[int, datetime], None],
                 now: Callable[[], datetime], limit_bytes: int | None = DRIVE_DAILY_CAP_BYTES,
                 max_transfer_bytes: int | None = None, flush_bytes: int = 256 * 1024 * 1024,
                 flush_s: float = 5.0) -> None:
        self._usage = usage
        self._record = record
        self._now = now
        self.limit_bytes = limit_bytes
        self.max_transfer_bytes = max_transfer_bytes
        self._admitted = 0  # bytes of the files this run started (for --max-transfer)
        self._pending = 0
        self._flush_bytes = flush_bytes
        self._flush_s = flush_s
        self._last_flush: datetime | None = None
        self._cached: Usage | None = None
        self._lock = threading.Lock()

    def admit(self, nbytes: int) -> None:
        """Let a file of `nbytes` still to send start, or raise QuotaStop: the window already holds
        the daily cap, or the file would take this run past --max-transfer."""
        with self._lock:
            if self.max_transfer_bytes is not None and self._admitted + nbytes > self.max_transfer_bytes:
                raise QuotaStop(f"--max-transfer reached ({self._admitted} bytes started this run)", None,
                                "max_transfer")
            now = self._now()
            if self.limit_bytes is not None:
                if self._cached is None or self._due(now):
                    self._flush_locked(now)
                    self._cached = self._usage(now - WINDOW)
                if self._cached.bytes_in_window + self._pending >= self.limit_bytes:
                    oldest = self._cached.oldest
                    raise QuotaStop("daily upload budget spent", (oldest + WINDOW) if oldest else now + WINDOW)
            self._admitted += nbytes

    def sent(self, nbytes: int) -> None:
        """Count `nbytes` the destination just received (called per chunk while a file uploads)."""
        with self._lock:
            self._pending += nbytes
            now = self._now()
            if self._due(now):
                self._flush_locked(now)

    def _due(self, now: datetime) -> bool:
        return (self._pending >= self._flush_bytes or self._last_flush is None
                or (now - self._last_flush).total_seconds() >= self._flush_s)

    def _flush_locked(self, now: datetime) -> None:
        if self._pending:
            self._record(self._pending, now)
            if self._cached is not None:
                self._cached = Usage(self._cached.bytes_in_window + self._pending, self._cached.oldest or now)
            self._pending = 0
        self._last_flush = now

    def flush(self) -> None:
        """Record what is still unrecorded (call at the end of a run)."""
        with self._lock:
            self._flush_locked(self._now())

    def resets_at(self) -> datetime | None:
        """When the oldest bytes this journal counted leave the window (None: it counted none)."""
        used = self._usage(self._now() - WINDOW)
        return (used.oldest + WINDOW) if used.oldest else None


def quota_wait_s(stop: QuotaStop, now: datetime, time_scale: float = 1.0) -> float:
    """Seconds to sleep before trying again after `stop`, at most CAP_POLL, in the remote's time
    divided by `time_scale` (an emulator whose clock runs that much faster)."""
    wait = CAP_POLL
    if stop.resets_at is not None:
        wait = min(CAP_POLL, max(timedelta(seconds=1), stop.resets_at - now))
    return wait.total_seconds() / max(time_scale, 1e-9)


def quota_stop_of(exc: QuotaExceededError) -> QuotaStop:
    """The stop for a destination's quota error: its daily cap (wait), or storage full (its own message:
    no wait clears it, so the run stops instead of failing every file in turn)."""
    if exc.kind == "storage":
        return QuotaStop(f"destination storage full ({exc}); free space on the destination or raise its "
                         "quota, then run the same command again", None, "storage")
    return QuotaStop(f"{exc}", exc.resets_at, exc.kind)
