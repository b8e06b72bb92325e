"""The daily upload budget: Drive's ~750 GB per user per rolling 24 h, plus `--max-transfer` per run.

The budget is kept in the journal (all workers writing as the same destination user share it), so a
worker asks `reserve(n)` before it sends a file's bytes. When the budget is spent, or the destination
answers with its own cap error, the run checkpoints and stops with exit code 3, or with
`--wait-for-quota` sleeps until `resets_at()` and carries on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

WINDOW = timedelta(hours=24)
DRIVE_DAILY_CAP_BYTES = 750 * 10**9


class QuotaStop(Exception):
    """The run must stop (or wait) for quota; `resets_at` is when budget frees up, if known."""

    def __init__(self, reason: str, resets_at: datetime | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.resets_at = resets_at


@dataclass(frozen=True)
class Usage:
    """Uploads recorded in the window: total bytes and the time of the oldest record still counted."""

    bytes_in_window: int
    oldest: datetime | None


class UploadBudget:
    """Rolling-window byte budget backed by the journal.

    usage(since) returns what the journal recorded for this destination user since `since`;
    record(nbytes, at) adds to it. `limit_bytes` None means no daily cap (e.g. local destinations).
    `max_transfer_bytes` limits this run alone.

    Small files would otherwise cost two journal round trips each, so reservations are recorded in
    batches (`flush_bytes` or `flush_s`, whichever comes first, and at `flush()`); between flushes the
    check adds this process's unflushed bytes to the journal's figure, so nothing is under-counted.
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
        self._run_bytes = 0
        self._pending = 0
        self._flush_bytes = flush_bytes
        self._flush_s = flush_s
        self._last_flush: datetime | None = None
        self._cached: Usage | None = None
        self._lock = threading.Lock()

    def reserve(self, nbytes: int) -> None:
        """Account `nbytes` about to be uploaded, or raise QuotaStop if they do not fit."""
        with self._lock:
            if self.max_transfer_bytes is not None and self._run_bytes + nbytes > self.max_transfer_bytes:
                raise QuotaStop(f"--max-transfer reached ({self._run_bytes} bytes sent this run)", None)
            now = self._now()
            if self.limit_bytes is not None:
                if self._cached is None or self._due(now):
                    self._flush_locked(now)
                    self._cached = self._usage(now - WINDOW)
                used = self._cached.bytes_in_window + self._pending
                if used + nbytes > self.limit_bytes:
                    oldest = self._cached.oldest
                    resets = (oldest + WINDOW) if oldest else now + WINDOW
                    raise QuotaStop("daily upload budget spent", resets)
            self._run_bytes += nbytes
            self._pending += nbytes
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

    def resets_at(self) -> datetime:
        now = self._now()
        used = self._usage(now - WINDOW)
        return (used.oldest + WINDOW) if used.oldest else now
