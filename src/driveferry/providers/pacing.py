"""Retry policy and per-remote pacing: how long to wait, and who waits.

`RetryPolicy` is a value: truncated exponential backoff (full or decorrelated jitter, capped at
`max_delay_s`), an optional overall give-up time per call, and the remote's `time_scale` (an emulator
whose clock runs k times faster asks every wait to be divided by k). Google asks for truncated
exponential backoff on 403/429 rate limits (developers.google.com/drive/api/guides/limits, api-notes
Part C §18); Microsoft asks that a Retry-After be waited out in full (api-notes Part C §18).

`Pacer` is shared by every thread (and every provider object) calling one remote: a throttled call
moves the remote's "not before" time forward and every later call to that remote waits for it, while
other remotes keep going; a successful call relaxes the shared backoff level. Waits and retries are
logged at INFO and reported to the pacer's observers (the migrate command turns them into `--json`
events and summary figures). Clock and sleep are injectable so tests run instantly.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from driveferry.errors import ThrottledError, TransientError

log = logging.getLogger("driveferry.retry")


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait between tries of one call, and when to give up. Seconds are the remote's
    seconds: every wait is divided by `time_scale` before it is slept.

    A throttle with a server-given Retry-After (`retry_after_s` > 0) waits exactly that long; a throttle
    without one (Drive never sends it) and any other transient error back off exponentially.
    `give_up_s` bounds the time one call may spend retrying throttles (None: forever: a remote that
    throttles is up and asks us to wait); `transient_give_up_s` bounds a run of other transient errors
    (5xx, resets, timeouts: 15 min, restic's backoff MaxElapsedTime; a throttle ends the run, so time
    waited on throttles does not count against it), so a dead endpoint is reported
    within minutes; until the remote has answered once in this process (`Pacer.reached`), such errors
    get only `first_contact_attempts` tries, so a wrong endpoint or a missing network fails in seconds
    (or, with `first_contact_give_up_s`, are retried that long: a network that is still coming up).
    `max_attempts` optionally bounds the tries too (None: only time bounds them). A lost upload session that may be transient
    (Graph's 404 on the first fragments) is retried `lost_session_retries` times after
    `lost_session_wait_s` (rclone waits 5 s: api-notes Part C §18).
    """

    base_delay_s: float = 1.0
    max_delay_s: float = 64.0  # Google: "maximum_backoff is typically 32 or 64 seconds"
    multiplier: float = 2.0
    jitter: Literal["full", "decorrelated"] = "full"
    give_up_s: float | None = 6 * 3600.0
    transient_give_up_s: float | None = 15 * 60.0
    first_contact_attempts: int = 4
    first_contact_give_up_s: float | None = None
    max_attempts: int | None = None
    time_scale: float = 1.0
    lost_session_retries: int = 3
    lost_session_wait_s: float = 5.0

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {self.time_scale}")
        if self.jitter not in ("full", "decorrelated"):
            raise ValueError(f"jitter must be 'full' or 'decorrelated', got {self.jitter!r}")

    def with_(self, **changes: object) -> RetryPolicy:
        return replace(self, **changes)  # type: ignore[arg-type]

    def cap_s(self, level: int) -> float:
        """The backoff ceiling at `level` (1 for the first retry): base x multiplier^(level-1), truncated."""
        return min(self.max_delay_s, self.base_delay_s * self.multiplier ** max(0, level - 1))

    def backoff_s(self, level: int, previous_s: float, rng: Callable[[], float]) -> float:
        """The jittered backoff before retry number `level`, in remote seconds.

        full: uniform in [0, cap]; decorrelated: uniform in [base, 3 x previous], truncated at the cap
        (the AWS architecture blog's "Exponential Backoff And Jitter" schemes).
        """
        if self.jitter == "decorrelated":
            low, high = self.base_delay_s, max(self.base_delay_s, previous_s * 3)
            return min(self.max_delay_s, low + (high - low) * rng())
        return self.cap_s(level) * rng()

    def delay_s(self, error: TransientError, level: int, previous_s: float, rng: Callable[[], float]) -> float:
        """Remote seconds to wait after `error` before the next try."""
        if isinstance(error, ThrottledError) and error.retry_after_s > 0:
            return float(error.retry_after_s)
        return self.backoff_s(level, previous_s, rng)

    def give_up_after_s(self, error: TransientError) -> float | None:
        """Remote seconds one call may keep retrying after errors like `error` (None: no limit)."""
        return self.give_up_s if isinstance(error, ThrottledError) else self.transient_give_up_s

    def scaled(self, seconds: float) -> float:
        """Seconds of this machine's clock for `seconds` of the remote's."""
        return seconds / self.time_scale


@dataclass(frozen=True)
class RetryEvent:
    """One wait: a retry after an error, or a call held back by the remote's pacer."""

    remote: str
    op: str
    wait_s: float  # seconds of this machine's clock
    reason: str
    attempt: int = 0  # the try that failed (0: held back by another call's throttle)

    def to_json(self) -> dict[str, object]:
        return {"event": "retry", "remote": self.remote, "op": self.op, "wait_s": round(self.wait_s, 3),
                "reason": self.reason, "attempt": self.attempt}


Observer = Callable[[RetryEvent], None]


@dataclass
class WaitStats:
    waits: int = 0
    waited_s: float = 0.0
    paced_s: float = 0.0  # spent in the spacing after throttles (not counted as waits)


class Pacer:
    """The shared "not before" time and backoff level of one remote (see module doc). Thread-safe."""

    def __init__(self, remote: str, clock: Clock = SYSTEM_CLOCK, rng: Callable[[], float] | None = None) -> None:
        self.remote = remote
        self.clock = clock
        self.rng = rng or random.random
        self._not_before = 0.0
        self._last_start = 0.0  # when the latest call was let through
        self._interval_s = 0.0  # learned spacing between call starts (machine seconds; 0: calm)
        self._level = 0
        self._previous_s = 0.0
        self.reached = False  # some call to this remote succeeded (it exists and answers)
        self._calm_below_s = 0.0
        self._lock = threading.Lock()
        self.observers: list[Observer] = []
        self.stats = WaitStats()

    @property
    def level(self) -> int:
        return self._level

    def hold_s(self) -> float:
        """Seconds (this machine's) until the remote may be called again."""
        with self._lock:
            return max(0.0, self._not_before - self.clock.monotonic())

    @property
    def interval_s(self) -> float:
        """The learned spacing between call starts (machine seconds; 0 while the remote is calm)."""
        return self._interval_s

    def wait_turn(self, op: str) -> float:
        """Sleep until this call may start: after the remote's "not before" time (another call's
        throttle) and, while the remote has been throttling, one learned interval after the previous
        call's start. The seconds slept.

        Without the spacing, every thread that waited out a throttle calls again at the same moment and
        all but one are refused again: under a sustained per-user limit (Drive: a few writes a second,
        api-notes Part C §18) that made 5-9 refused calls per accepted one. rclone's Drive pacer spaces
        calls the same way (a sleep doubled on each throttle, decayed on each success; rclone
        lib/pacer `Default` calculator).
        """
        waited = 0.0
        held = False
        while True:
            with self._lock:
                now = self.clock.monotonic()
                held = held or self._not_before > now
                slot = max(now, self._not_before, self._last_start + self._interval_s)
                if slot <= now:
                    self._last_start = now
                    break
            self.clock.sleep(slot - now)
            waited += slot - now
        if held:
            self.report(RetryEvent(self.remote, op, waited, "remote is throttled (held back)"))
        elif waited > 0:
            with self._lock:
                self.stats.paced_s += waited
            log.debug("%s: %s: spaced %.3fs after recent throttling", self.remote, op, waited)
        return waited

    def throttled(self, policy: RetryPolicy, error: ThrottledError) -> float:
        """A call was throttled: raise the shared level, push "not before" out; the remote seconds to wait."""
        with self._lock:
            self._level += 1
            delay = policy.delay_s(error, self._level, self._previous_s or policy.base_delay_s, self.rng)
            self._previous_s = delay
            self._not_before = max(self._not_before, self.clock.monotonic() + policy.scaled(delay))
            # the spacing starts at a quarter of the base delay and doubles per throttle, up to the cap
            floor = policy.scaled(policy.base_delay_s) / 4
            self._interval_s = min(policy.scaled(policy.max_delay_s), max(floor, self._interval_s * 2))
            self._calm_below_s = floor / 16
            return delay

    def succeeded(self) -> None:
        """A call got through: the next throttle starts from the bottom of the backoff again, and the
        spacing between calls decays by a quarter (to none once it is small)."""
        self.reached = True
        if self._level or self._interval_s:
            with self._lock:
                self._level = 0
                self._previous_s = 0.0
                self._interval_s *= 0.75
                if self._interval_s < self._calm_below_s:
                    self._interval_s = 0.0

    def report(self, event: RetryEvent) -> None:
        """Log one wait at INFO, count it, and tell the observers."""
        with self._lock:
            self.stats.waits += 1
            self.stats.waited_s += event.wait_s
            observers = list(self.observers)
        log.info("%s: %s: waiting %.2fs (%s)", event.remote, event.op, event.wait_s, event.reason)
        for observe in observers:
            observe(event)


@dataclass
class _Pacers:
    by_remote: dict[str, Pacer] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_PACERS = _Pacers()


def pacer_for(remote: str) -> Pacer:
    """The process-wide pacer of remote `remote`: every provider built for that remote shares it."""
    with _PACERS.lock:
        pacer = _PACERS.by_remote.get(remote)
        if pacer is None:
            pacer = _PACERS.by_remote[remote] = Pacer(remote)
        return pacer


def reason_of(error: BaseException) -> str:
    """A short reason for logs and events: the API's code or status, else the error type."""
    code = getattr(error, "code", None)
    status = getattr(error, "status", None)
    if code or status:
        return " ".join(str(x) for x in (status, code) if x)
    return type(error).__name__


class RequestTally:
    """HTTP requests one adapter made, by kind ("metadata", "upload", "media", "auth"). Thread-safe.

    Adapters count at their transport (every request that went on the wire, retries included), so
    `driveferry migrate` can report API calls per file for each remote: on a rate-capped API files per
    second is the rate divided by this figure (issue #15).
    """

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] = self._counts.get(kind, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())
