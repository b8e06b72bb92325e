"""Helpers shared by the journal tests: a clock the test moves and planned-item factories."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from driveferry.journal import PlannedItem

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """A settable UTC clock shared by the journals of one test (thread-safe)."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now



def files(n: int, *, prefix: str = "dir/f", size_bytes: int = 100) -> list[PlannedItem]:
    """`n` planned files with distinct paths, sizes `size_bytes` and a quickXor hash each."""
    return [PlannedItem(path=f"{prefix}{i:04d}", source_id=f"id-{prefix}{i}", kind="file",
                        size_bytes=size_bytes, modified=T0 - timedelta(days=1),
                        hashes={"quickxor": f"{i:040x}"}) for i in range(n)]
