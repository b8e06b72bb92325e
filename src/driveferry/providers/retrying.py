"""Retry as a wrapper: an immutable policy and one function that applies it.

Only `TransientError` (and its `ThrottledError`) is retried; a throttle's `retry_after_s` is honoured
exactly (never less). Everything else (quota, not found, permission, integrity) propagates at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from driveferry.errors import ThrottledError, TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. Values, not state: derive variants with `with_(...)`."""

    max_attempts: int = 8
    base_delay_s: float = 0.5
    max_delay_s: float = 60.0
    max_retry_after_s: float = 900.0  # a throttle asking for longer than this is passed up
    jitter: float = 0.25

    def with_(self, **changes: float | int) -> RetryPolicy:
        return replace(self, **changes)  # type: ignore[arg-type]

    def delay_s(self, attempt: int, error: TransientError) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        if isinstance(error, ThrottledError):
            return float(error.retry_after_s)
        backoff = min(self.max_delay_s, self.base_delay_s * (2.0 ** (attempt - 1)))
        return backoff * (1 + self.jitter * random.random())


NO_RETRY = RetryPolicy(max_attempts=1)


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy, what: str,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """Call `fn` until it succeeds, retrying TransientError per `policy`; the last error propagates."""
    attempt = 1
    while True:
        try:
            return fn()
        except TransientError as exc:
            if attempt >= policy.max_attempts:
                raise
            delay = policy.delay_s(attempt, exc)
            if isinstance(exc, ThrottledError) and delay > policy.max_retry_after_s:
                raise
            log.info("%s: %s; retry %d/%d in %.1fs", what, exc, attempt, policy.max_attempts - 1, delay)
            sleep(delay)
            attempt += 1
