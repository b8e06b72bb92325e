"""Rate limiting on the emulated clock: token buckets per (api, user, reads|writes), throttling episodes
and storms.

A bucket holds up to `burst` tokens and refills at `rate` tokens per emulated second; a request takes one
token or is refused (a refused request takes none). Graph answers a refusal with a throttling episode:
for `Retry-After` seconds every call of that user is refused, since "throttled requests count against
limits" and a client must wait the whole Retry-After (api-notes §18, Microsoft's throttling guidance).
A storm refuses every call of one API for a while, whoever makes it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from driveferry.emulator.realism.settings import RateLimit


@dataclass
class _Bucket:
    tokens: float
    at: float  # emulated time of the last refill


class Buckets:
    """Token buckets keyed by (api, user, kind), with rates from a RateLimit."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}

    def take(self, api: str, user: str, write: bool, limit: RateLimit) -> bool:
        """True if the request may go on (a token was taken or this kind is unlimited)."""
        rate = limit.writes_per_s if write else limit.reads_per_s
        if rate <= 0:
            return True
        burst = float((limit.write_burst if write else limit.read_burst) or max(1.0, rate))
        key = (api, user, "w" if write else "r")
        now = self._now()
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = _Bucket(burst, now)
            b.tokens = min(burst, b.tokens + max(0.0, now - b.at) * rate)
            b.at = now
            if b.tokens < 1.0:
                return False
            b.tokens -= 1.0
            return True

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


class Windows:
    """Periods during which calls are refused, keyed by anything (per user episodes, per API storms)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def start(self, key: str, duration_s: float) -> float:
        """Refuse calls under `key` for `duration_s` emulated seconds from now (0 ends it); the end time."""
        until = self._now() + max(0.0, duration_s)
        with self._lock:
            if duration_s <= 0:
                self._until.pop(key, None)
            else:
                self._until[key] = until
        return until

    def remaining(self, key: str) -> float:
        """Emulated seconds left of the window under `key` (0 if none is open)."""
        with self._lock:
            until = self._until.get(key)
            if until is None:
                return 0.0
            left = until - self._now()
            if left <= 0:
                del self._until[key]
                return 0.0
            return left

    def open_windows(self) -> dict[str, float]:
        """Every open window's remaining seconds."""
        with self._lock:
            keys = list(self._until)
        return {k: left for k in keys if (left := self.remaining(k)) > 0}

    def clear(self) -> None:
        with self._lock:
            self._until.clear()
