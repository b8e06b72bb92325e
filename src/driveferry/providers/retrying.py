"""Retry as one wrapper, composed once where providers are built (as restic's `wrapBackend`).

`RetryingProvider` wraps every core call of a provider (stat, list pages, open_range, begin/resume
upload, mkdir, delete) and its optional capabilities; `RetryingUploadSession` wraps `send`,
`committed` and `abort`. Only `TransientError` (and its `ThrottledError`) is retried, per the remote's
`RetryPolicy` and `Pacer` (pacing.py); everything else (quota, not found, permission, integrity) passes
at once. Adapters themselves never retry: they translate each failure once and raise it.

Nesting: a call made while another retried call runs in the same thread is made once (the outer call
retries as a whole), so waits never multiply. Listing pages are retried one by one through the
adapter's `page_call` hook, which the wrapper installs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from typing import Any, TypeVar

from driveferry.errors import NotFoundError, ThrottledError, TransientError, UploadSessionLostError
from driveferry.integrity.hashes import Buffer
from driveferry.providers.base import Entry, Features, Provider, UploadMeta, UploadSession
from driveferry.providers.pacing import Pacer, RetryEvent, RetryPolicy, pacer_for, reason_of

__all__ = ["RetryPolicy", "Retrier", "RetryingProvider", "RetryingUploadSession", "call_with_retry",
           "in_retry", "plain_call"]

T = TypeVar("T")
log = logging.getLogger(__name__)
_state = threading.local()


def in_retry() -> bool:
    """Whether this thread is inside a retried call (inner calls then go once)."""
    return bool(getattr(_state, "depth", 0))


@contextmanager
def _inside() -> Iterator[None]:
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1


def plain_call(fn: Callable[[], T], what: str) -> T:
    """The adapters' default `page_call`: one try (the wrapper installs a retrying one)."""
    return fn()


class _Tries:
    """The retry state of one call: tries made, time spent, the last backoff."""

    def __init__(self, retrier: Retrier, op: str) -> None:
        self.r = retrier
        self.op = op
        self.reset()

    def reset(self) -> None:
        """Progress was made (bytes flowed, the server committed more): count afresh."""
        self.attempts = 0
        self.started = self.r.pacer.clock.monotonic()
        self.previous_s = 0.0
        # where the current run of 5xx / network errors began: the call's start, or None right after a
        # throttle (the next such error starts a run). retry_transient_give_up bounds that run, not the
        # call: a batch read throttled for 15 remote minutes (Graph's Retry-After, waited in full) that
        # then met one 503 gave up at once and failed the run (CI, test_faults_everywhere[real]);
        # throttles are bounded by retry_give_up, counted from the call's start.
        self.transient_from: float | None = self.started

    def failed(self, exc: TransientError) -> None:
        """Wait before the next try, or re-raise `exc` when the policy gives up."""
        policy, pacer = self.r.policy, self.r.pacer
        self.attempts += 1
        if policy.max_attempts is not None and self.attempts >= policy.max_attempts:
            raise exc
        if not pacer.reached and not isinstance(exc, ThrottledError) and self._gave_up_first_contact():
            raise self.r.unreachable(exc) from exc  # never answered: a wrong endpoint or no network
        if isinstance(exc, ThrottledError):
            delay = pacer.throttled(policy, exc)  # every caller of this remote waits too
        else:
            delay = policy.delay_s(exc, self.attempts, self.previous_s or policy.base_delay_s, pacer.rng)
        self.previous_s = delay
        wait = policy.scaled(delay)
        limit = policy.give_up_after_s(exc)
        now = pacer.clock.monotonic()
        if isinstance(exc, ThrottledError):
            since: float = self.started
            self.transient_from = None
        else:
            if self.transient_from is None:
                self.transient_from = now
            since = self.transient_from
        if limit is not None and now - since + wait > policy.scaled(limit):
            raise exc
        if not pacer.reached and self.attempts == 1 and policy.first_contact_give_up_s is not None:
            log.warning("%s: cannot reach %s yet (%s); retrying for up to %.0f s (retry_first_contact)",
                        pacer.remote, self.r.endpoint, exc, policy.first_contact_give_up_s)
        pacer.report(RetryEvent(pacer.remote, self.op, wait, reason_of(exc), self.attempts))
        pacer.clock.sleep(wait)

    def _gave_up_first_contact(self) -> bool:
        """Whether a remote that has not answered yet has had its tries: `first_contact_attempts`, or with
        `first_contact_give_up_s` set (the `retry_first_contact` key) that long."""
        patience = self.r.policy.first_contact_give_up_s
        if patience is None:
            return self.attempts >= self.r.policy.first_contact_attempts
        return self.r.pacer.clock.monotonic() - self.started >= self.r.policy.scaled(patience)


class Retrier:
    """Applies one remote's policy and pacer to calls (thread-safe: keeps no per-call state)."""

    def __init__(self, policy: RetryPolicy, pacer: Pacer, endpoint: str | None = None) -> None:
        self.policy = policy
        self.pacer = pacer
        self.endpoint = endpoint or "its endpoint"

    def unreachable(self, exc: TransientError) -> TransientError:
        """The error for a remote that never answered: one line naming the remote, the URL and the fix."""
        patience = self.policy.first_contact_give_up_s
        wait = (f"retry_first_contact = \"{patience:.0f}s\" ran out" if patience is not None else
                f"set retry_first_contact = \"10m\" in [remotes.{self.pacer.remote}] to keep trying that long")
        return TransientError(f"{self.pacer.remote}: cannot reach {self.endpoint} ({exc}); check the network and "
                              f"the remote's endpoint, or {wait}", status=exc.status, code=exc.code)

    def tries(self, op: str) -> _Tries:
        return _Tries(self, op)

    def call(self, fn: Callable[[], T], op: str) -> T:
        """`fn()` until it succeeds; the last error propagates when the policy gives up."""
        if in_retry():
            return fn()
        tries = self.tries(op)
        while True:
            self.pacer.wait_turn(op)
            try:
                with _inside():
                    result = fn()
            except TransientError as exc:
                tries.failed(exc)
                continue
            self.pacer.succeeded()
            return result


class _Resumed:
    """An adapter's download, resumed after a transient failure from the last byte received.

    An iterator of blocks; it also offers `readinto(view)` (0 at the end), passed through to the
    adapter's stream when that has one (the Graph download reads straight into the relay's chunk
    buffer, providers/streaming.py `rechunk`), else copied from its blocks."""

    def __init__(self, reopen: Callable[[int], Iterator[bytes]], retrier: Retrier, start: int,
                 first: Iterator[bytes], op: str) -> None:
        self._reopen = reopen
        self._r = retrier
        self._pos = start
        self._blocks = iter(first)
        self._op = op
        self._tries = retrier.tries(op)
        self._held = memoryview(b"")  # the rest of a block a short `readinto` did not take

    def __iter__(self) -> _Resumed:
        return self

    def __next__(self) -> bytes:
        while True:
            try:
                with _inside():
                    block = next(self._blocks)
            except TransientError as exc:
                self._failed(exc)
                continue
            self._advanced(len(block))
            return block

    def readinto(self, view: memoryview) -> int:
        while True:
            try:
                with _inside():
                    n = self._into(view)
            except TransientError as exc:
                self._failed(exc)
                continue
            self._advanced(n)
            return n

    def _into(self, view: memoryview) -> int:
        reader = getattr(self._blocks, "readinto", None)
        if reader is not None and not self._held:
            return int(reader(view))
        if not self._held:
            self._held = memoryview(next(self._blocks, b"")).cast("B")
        n = min(len(view), len(self._held))
        view[:n] = self._held[:n]
        self._held = self._held[n:]
        return n

    def _advanced(self, n: int) -> None:
        if n:
            self._pos += n
            self._tries.reset()
            self._r.pacer.succeeded()

    def _failed(self, exc: TransientError) -> None:
        self._tries.failed(exc)  # waits, or re-raises when the policy gives up
        self._r.pacer.wait_turn(self._op)
        self._held = memoryview(b"")
        self._blocks = iter(self._r.call(lambda at=self._pos: self._reopen(at), self._op))  # type: ignore[misc]


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy, what: str, pacer: Pacer | None = None) -> T:
    """`fn()` retried per `policy` (with a private pacer unless one is given)."""
    return Retrier(policy, pacer or Pacer(what)).call(fn, what)


class RetryingUploadSession:
    """An UploadSession whose requests are retried; `send` resumes in place at the committed offset.

    On a transient failure `send` waits, asks `committed()`, and re-sends only the part of the chunk
    the server lacks, at its own offset, from the caller's buffer (valid for the whole call). A session
    that declares `transient_lost = True` (Graph: a fragment 404 right after creation can be transient)
    gets `lost_session_retries` more tries before UploadSessionLostError is passed on.
    """

    def __init__(self, inner: UploadSession, retrier: Retrier, what: str) -> None:
        self.inner = inner
        self.size = inner.size
        self.chunk_multiple = inner.chunk_multiple
        self._r = retrier
        self._what = what
        self._lost_left = retrier.policy.lost_session_retries if getattr(inner, "transient_lost", False) else 0

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def token(self) -> str:
        """The inner session's token, read afresh: a session may change it (Drive's one-request upload
        becomes a resumable one at its first partial chunk)."""
        return self.inner.token

    @token.setter
    def token(self, value: str) -> None:
        self.inner.token = value

    def committed(self) -> int:
        return self._r.call(self.inner.committed, f"upload status {self._what}")

    def abort(self) -> None:
        self._r.call(self.inner.abort, f"cancel upload {self._what}")

    def send(self, offset: int, chunk: Buffer, last: bool) -> Entry | None:
        view = memoryview(chunk).cast("B")
        end = offset + len(view)
        pos = offset
        op = f"upload {self._what} at {offset}"
        tries = self._r.tries(op)
        while True:
            self._r.pacer.wait_turn(op)
            try:
                with _inside():
                    result = self.inner.send(pos, chunk if pos == offset else view[pos - offset:], last)
            except UploadSessionLostError as exc:
                if self._lost_left <= 0:
                    raise
                self._lost_left -= 1
                wait = self._r.policy.scaled(self._r.policy.lost_session_wait_s)
                self._r.pacer.report(RetryEvent(self._r.pacer.remote, op, wait, reason_of(exc)))
                self._r.pacer.clock.sleep(wait)
                continue
            except TransientError as exc:
                behind = getattr(exc, "committed_offset", None)
                if behind is not None and behind < offset:
                    raise  # bytes before this chunk are missing: only the caller can re-read them
                tries.failed(exc)
                committed = self.committed()
                if committed < offset:
                    raise
                if committed >= end:
                    return self._r.call(lambda: self.inner.send(self.size, b"", True), op) if last else None
                if committed > pos:
                    tries.reset()
                pos = committed
                continue
            self._r.pacer.succeeded()
            return result


class _Capability:
    """An optional capability object (a Features field) whose method calls are retried. Generic, so a
    capability added to Features later is covered too; attributes the object lacks stay missing (so
    `hasattr` and runtime protocol checks answer as for the object itself)."""

    def __init__(self, inner: Any, retrier: Retrier) -> None:
        self._inner = inner
        self._r = retrier

    def __getattr__(self, name: str) -> Any:
        if name == "_inner":
            raise AttributeError(name)
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def retried(*args: Any, **kwargs: Any) -> Any:
            what = f"{name} {_label(args)}".strip()
            result = self._r.call(lambda: attr(*args, **kwargs), what)
            # an upload a capability starts (a new revision of a file) is retried per chunk like any other
            return RetryingUploadSession(result, self._r, what) if isinstance(result, UploadSession) else result
        return retried


def _label(args: tuple[Any, ...]) -> str:
    """What a capability call is about, for logs: the path of its first Entry argument, if any."""
    entry = next((a for a in args if isinstance(a, Entry)), None)
    return entry.path if entry is not None else ""


class RetryingProvider:
    """A Provider whose every call is retried per `policy` and paced by the remote's shared `Pacer`.

    Attributes the contract does not name (an adapter's own helpers) are passed through unwrapped.
    """

    def __init__(self, inner: Provider, policy: RetryPolicy | None = None, pacer: Pacer | None = None,
                 endpoint: str | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.hash_types = inner.hash_types
        self.policy = policy or RetryPolicy()
        self.pacer = pacer or pacer_for(inner.name)
        self._r = Retrier(self.policy, self.pacer, endpoint)  # endpoint: the URL named when it never answers
        f = inner.features
        capabilities: dict[str, Any] = {fl.name: _Capability(getattr(f, fl.name), self._r) for fl in fields(f)
                        if not isinstance(getattr(f, fl.name), int | float | str | bool | None)}
        self.features: Features = replace(f, **capabilities)
        if hasattr(inner, "page_call"):
            inner.page_call = self._r.call

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def root(self) -> Entry:
        return self._r.call(self.inner.root, "root")

    def stat(self, path: str) -> Entry:
        return self._r.call(lambda: self.inner.stat(path), f"stat {path}")

    def list(self, folder: Entry) -> Iterator[Entry]:
        """The adapter's listing; each page is retried on its own (page_call)."""
        return self.inner.list(folder)

    def open_range(self, entry: Entry, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes, resumed after a transient failure from the last byte received."""
        op = f"download {entry.path}"
        first = self._r.call(lambda: self.inner.open_range(entry, start, end), op)
        return _Resumed(lambda at: self.inner.open_range(entry, at, end), self._r, start, first, op)

    def begin_upload(self, parent: Entry, name: str, size: int, meta: UploadMeta) -> RetryingUploadSession:
        session = self._r.call(lambda: self.inner.begin_upload(parent, name, size, meta), f"start upload {name}")
        return RetryingUploadSession(session, self._r, name)

    def resume_upload(self, token: str) -> RetryingUploadSession:
        session = self._r.call(lambda: self.inner.resume_upload(token), "resume upload")
        return RetryingUploadSession(session, self._r, "resumed upload")

    def mkdir(self, parent: Entry, name: str) -> Entry:
        return self._r.call(lambda: self.inner.mkdir(parent, name), f"mkdir {name}")

    def delete(self, entry: Entry) -> None:
        """Delete; a retry that finds the item gone counts as done (the lost reply had succeeded)."""
        tried = [0]

        def once() -> None:
            tried[0] += 1
            try:
                self.inner.delete(entry)
            except NotFoundError:
                if tried[0] == 1:
                    raise
        self._r.call(once, f"delete {entry.path}")
