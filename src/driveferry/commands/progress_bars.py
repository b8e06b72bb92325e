"""`migrate`'s tqdm bars on a terminal: total bytes with rate and ETA, one bar per large file."""

from __future__ import annotations

import sys
import threading
from typing import Any

from driveferry.migrate.job import PlanProgress
from driveferry.units import format_size


class _NoBar:
    """What TerminalProgress uses of a tqdm bar, doing nothing (quiet or not a terminal)."""

    def __init__(self, **_: Any) -> None:
        self.total = 0

    def update(self, n: int) -> None: ...

    def set_postfix_str(self, s: str, refresh: bool = True) -> None: ...

    def write(self, s: str, file: Any = None) -> None:
        print(s, file=file or sys.stderr)

    def close(self) -> None: ...


class TerminalProgress(PlanProgress):
    """tqdm bars: total bytes with rate and ETA, plus one bar per active file (when a TTY)."""

    def __init__(self, enabled: bool, quiet: bool = False) -> None:
        # bars only on a terminal: redirected output gets progress lines (progress.LineProgress)
        self.enabled = enabled and sys.stderr.isatty()
        self.quiet = quiet
        if self.enabled:
            from tqdm import tqdm
            self._tqdm: Any = tqdm
        else:  # tqdm (and the multiprocessing lock it makes) would cost memory and start-up time for nothing
            self._tqdm = _NoBar
        self.total = self._tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, desc="total",
                                disable=not self.enabled, dynamic_ncols=True)
        self._files: dict[str, Any] = {}
        self._lock = threading.Lock()

    def planned(self, count: int) -> None:
        if self.enabled:
            self.total.set_postfix_str(f"{count} planned", refresh=True)

    def remaining(self, files: int, nbytes: int) -> None:
        self.total.total = nbytes
        self.total.set_postfix_str(f"{files} files to copy", refresh=True)

    def file_started(self, path: str, size: int, resumed_from: int) -> None:
        with self._lock:
            if self.enabled and size > 8 * 1024 * 1024:
                self._files[path] = self._tqdm(total=size, initial=resumed_from, unit="B", unit_scale=True,
                                               desc=path[-40:], leave=False, dynamic_ncols=True)

    def advance(self, path: str, nbytes: int) -> None:
        with self._lock:
            self.total.update(nbytes)
            bar = self._files.get(path)
            if bar:
                bar.update(nbytes)

    def file_finished(self, path: str, status: str) -> None:
        with self._lock:
            bar = self._files.pop(path, None)
            if bar:
                bar.close()
            if status == "failed":
                self.total.write(f"failed: {path}", file=sys.stderr)

    def would_copy(self, path: str, size: int) -> None:
        if not self.quiet:
            self.total.write(f"would copy: {path} ({format_size(size)})", file=sys.stdout)

    def close(self) -> None:
        self.total.close()
