"""How `migrate` shows its progress: tqdm bars on a terminal, a progress line every N seconds without
one (a log file, a notebook cell, `nohup`), or JSON lines (`--json`, events.schema.json).

Each renderer is a `PlanProgress` the run calls back; `Tracker` keeps the figures the line and the
`progress` event share: this run's files and bytes against what planning said is left, the rate,
the ETA and a wait for the daily quota.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from driveferry.migrate.job import PlanProgress
from driveferry.providers.pacing import RetryEvent
from driveferry.units import format_size

DEFAULT_INTERVAL_S = 30.0


class Tracker:
    """This run's figures, updated from the callbacks (thread-safe) and read by `figures()`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self.files_total = 0
        self.bytes_total = 0
        self.files_done = 0
        self.files_failed = 0
        self.bytes_sent = 0
        self.bytes_found = 0  # of bytes_total: files found already on the destination (not sent)
        self.quota_until: float | None = None  # clock() at which a --wait-for-quota sleep ends

    def remaining(self, files: int, nbytes: int) -> None:
        with self._lock:
            self.files_total, self.bytes_total = files, nbytes

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.bytes_sent += nbytes
            self.quota_until = None

    def found(self, nbytes: int) -> None:
        with self._lock:
            self.bytes_found += nbytes

    def finished(self, status: str) -> None:
        with self._lock:
            if status in ("copied", "skipped"):
                self.files_done += 1
            elif status == "failed":
                self.files_failed += 1

    def quota_wait(self, wait_s: float) -> None:
        with self._lock:
            self.quota_until = self._clock() + wait_s

    def figures(self) -> dict[str, Any]:
        """The `progress` event's fields (events.schema.json): files and bytes of this run so far (bytes
        sent, plus those of files found already there), the rate of sending since the run began, the
        ETA at that rate (None before any byte) and a quota wait left."""
        with self._lock:
            now = self._clock()
            elapsed = max(now - self.started, 1e-9)
            rate = self.bytes_sent / elapsed
            left = max(self.bytes_total - self.bytes_sent - self.bytes_found, 0)
            eta = round(left / rate, 1) if rate > 0 else (0.0 if left == 0 else None)
            quota = round(self.quota_until - now, 1) if self.quota_until and self.quota_until > now else None
            return {"files_done": self.files_done, "files_total": self.files_total,
                    "files_failed": self.files_failed, "bytes_done": self.bytes_sent + self.bytes_found,
                    "bytes_total": self.bytes_total, "rate_bytes_per_s": round(rate, 1), "eta_s": eta,
                    "quota_wait_s": quota, "elapsed_s": round(elapsed, 1)}


def progress_line(f: dict[str, Any]) -> str:
    """One human line for the `progress` figures, e.g. "progress: 12/40 files, 1.2 GiB of 3.4 GiB
    (35.3%), 10.2 MiB/s, ETA 3m 40s"."""
    pct = 100.0 * f["bytes_done"] / f["bytes_total"] if f["bytes_total"] else 100.0
    eta = "ETA unknown" if f["eta_s"] is None else f"ETA {duration(f['eta_s'])}"
    line = (f"progress: {f['files_done']}/{f['files_total']} files, {format_size(f['bytes_done'])} of "
            f"{format_size(f['bytes_total'])} ({min(pct, 100.0):.1f}%), {format_size(f['rate_bytes_per_s'])}/s, "
            f"{eta}")
    if f["files_failed"]:
        line += f", {f['files_failed']} failed"
    if f["quota_wait_s"]:
        line += f"; waiting {duration(f['quota_wait_s'])} for the daily upload quota"
    return line


def duration(seconds: float) -> str:
    s = int(seconds)
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    return (f"{d}d " if d else "") + (f"{h}h " if d or h else "") + f"{m}m {s % 60}s"


class Ticker:
    """Calls `tick()` every `interval_s` wall seconds on a daemon thread until `stop()`."""

    def __init__(self, interval_s: float, tick: Callable[[], None]) -> None:
        self._interval_s, self._tick = interval_s, tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress-ticker", daemon=True)

    def start(self) -> None:
        """Start ticking; a second call (the next round of a run that waited for its quota) is a no-op."""
        if not self._thread.is_alive() and not self._stop.is_set():
            try:
                self._thread.start()
            except RuntimeError:  # started before and finished: nothing more to tick
                pass

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._tick()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


class LineProgress(PlanProgress):
    """Without a terminal: a `progress:` line on stderr every `interval_s` seconds and one at the end,
    failed files as they fail. Nothing is rewritten in place, so a log file stays readable."""

    def __init__(self, interval_s: float, stream: IO[str] | None = None) -> None:
        self.tracker = Tracker()
        self._stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._interval_s = interval_s
        self._ticker = Ticker(interval_s, self.print_line)
        self._planning = True
        self._listed_at: float | None = None  # when the last "planning:" line was printed

    def _write(self, text: str) -> None:
        with self._lock:
            print(text, file=self._stream, flush=True)

    def print_line(self) -> None:
        if not self._planning:
            self._write(progress_line(self.tracker.figures()))

    def planned(self, count: int) -> None:
        now = time.monotonic()  # a line per interval while listing, not one per 200 items
        if self._planning and (self._listed_at is None or now - self._listed_at >= self._interval_s):
            self._listed_at = now
            self._write(f"planning: {count} items listed")

    def remaining(self, files: int, nbytes: int) -> None:
        self.tracker.remaining(files, nbytes)
        self._planning = False
        self._write(f"to copy: {files} files, {format_size(nbytes)}")
        self._ticker.start()

    def advance(self, path: str, nbytes: int) -> None:
        self.tracker.advance(nbytes)

    def found_there(self, path: str, nbytes: int) -> None:
        self.tracker.found(nbytes)

    def file_finished(self, path: str, status: str) -> None:
        self.tracker.finished(status)
        if status == "failed":
            self._write(f"failed: {path}")

    def quota_wait(self, reason: str, wait_s: float) -> None:
        self.tracker.quota_wait(wait_s)
        self._write(f"daily upload quota: {reason}; waiting {duration(wait_s)}")

    def would_copy(self, path: str, size: int) -> None:
        print(f"would copy: {path} ({format_size(size)})", flush=True)

    def close(self) -> None:
        self._ticker.stop()
        self.print_line()


class JsonProgress(PlanProgress):
    """JSON lines on stdout, one object per event; every shape is in events.schema.json. With an
    interval, a `progress` event every `interval_s` seconds and one at the end."""

    def __init__(self, interval_s: float | None = None, stream: IO[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._stream = stream
        self.tracker = Tracker()
        self._ticker = Ticker(interval_s, self._progress) if interval_s else None
        self._sending = False

    def _emit(self, **event: Any) -> None:
        with self._lock:
            print(json.dumps(event), flush=True, file=self._stream or sys.stdout)

    def _progress(self) -> None:
        if self._sending:
            self._emit(event="progress", **self.tracker.figures())

    def planned(self, count: int) -> None:
        self._emit(event="planned", count=count)

    def remaining(self, files: int, nbytes: int) -> None:
        self.tracker.remaining(files, nbytes)
        self._emit(event="remaining", files=files, bytes=nbytes)
        self._sending = True
        if self._ticker is not None:
            self._ticker.start()

    def file_started(self, path: str, size: int, resumed_from: int) -> None:
        self._emit(event="start", path=path, size=size, resumed_from=resumed_from)

    def advance(self, path: str, nbytes: int) -> None:
        self.tracker.advance(nbytes)

    def found_there(self, path: str, nbytes: int) -> None:
        self.tracker.found(nbytes)

    def file_finished(self, path: str, status: str) -> None:
        self.tracker.finished(status)
        self._emit(event="finish", path=path, status=status)

    def would_copy(self, path: str, size: int) -> None:
        self._emit(event="would_copy", path=path, size=size)

    def retry(self, event: RetryEvent) -> None:
        """One wait of the retry layer: {"event": "retry", "remote", "op", "wait_s", "reason", ...}."""
        self._emit(**event.to_json())

    def quota_wait(self, reason: str, wait_s: float) -> None:
        """A wait for the daily upload cap (--wait-for-quota): {"event": "quota_wait", "wait_s", "reason"}."""
        self.tracker.quota_wait(wait_s)
        self._emit(event="quota_wait", wait_s=round(wait_s, 3), reason=reason)

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        self._progress()
