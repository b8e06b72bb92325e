"""The retry wrapper's own logic on scripted inner objects and a fake clock: what it re-sends, re-reads
and repeats. (Over real HTTP against the emulator: test_retrying_emulator.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_retrying_policy import FakeClock

from driveferry.errors import NotFoundError, ThrottledError, TransientError, UploadSessionLostError
from driveferry.integrity.hashes import Buffer
from driveferry.providers.base import Entry, Features, Kind
from driveferry.providers.pacing import Pacer, RetryPolicy
from driveferry.providers.retrying import Retrier, RetryingProvider, RetryingUploadSession

FILE = Entry(id="f", path="f.bin", name="f.bin", kind=Kind.FILE, size=100)


class ScriptedSession:
    """Holds what the "server" committed; fails the sends named in `fail_at` once each."""

    token, chunk_multiple = "tok", 1

    def __init__(self, size: int, fail_at: dict[int, tuple[Exception, int]], transient_lost: bool = False) -> None:
        self.size = size
        self.fail_at = fail_at  # send number -> (error, bytes the server kept of that send)
        self.transient_lost = transient_lost
        self.held = 0
        self.sends: list[tuple[int, int]] = []  # (offset, length) of every send
        self.asked = 0

    def committed(self) -> int:
        self.asked += 1
        return self.held

    def send(self, offset: int, chunk: Buffer, last: bool) -> Entry | None:
        n = len(memoryview(chunk))
        self.sends.append((offset, n))
        assert offset <= self.held, "bytes before the offset are missing"
        failure = self.fail_at.pop(len(self.sends), None)
        if failure is not None:
            exc, kept = failure
            self.held = max(self.held, offset + kept)
            raise exc
        self.held = max(self.held, offset + n)
        return FILE if last and self.held == self.size else None

    def abort(self) -> None: ...


def wrapped(session: ScriptedSession, **policy: Any) -> tuple[RetryingUploadSession, FakeClock]:
    clock = FakeClock()
    r = Retrier(RetryPolicy(**policy), Pacer("t", clock, rng=lambda: 1.0))
    return RetryingUploadSession(session, r, "f.bin"), clock  # type: ignore[arg-type]


def test_send_resends_only_what_the_server_lacks_at_its_offset() -> None:
    inner = ScriptedSession(100, {2: (TransientError("reset"), 15)})
    s, clock = wrapped(inner)
    buf = bytearray(range(40))
    assert s.send(0, buf[:40], False) is None
    assert s.send(40, memoryview(bytes(60)), True) is FILE
    # second send died after the server kept 15 of its 60 bytes: the rest went at offset 55, once
    assert inner.sends == [(0, 40), (40, 60), (55, 45)] and inner.asked == 1 and clock.sleeps == [1.0]


def test_send_already_complete_after_a_lost_reply_asks_for_the_file() -> None:
    inner = ScriptedSession(50, {1: (TransientError("timeout"), 50)})
    s, _ = wrapped(inner)
    assert s.send(0, bytes(50), True) is FILE
    assert inner.sends == [(0, 50), (50, 0)]  # no byte sent twice


def test_throttled_send_waits_the_retry_after_then_resends_in_place() -> None:
    inner = ScriptedSession(30, {1: (ThrottledError("429", retry_after_s=120), 0)})
    s, clock = wrapped(inner, time_scale=60)
    assert s.send(0, bytes(30), True) is FILE
    # the Retry-After in full (120 s at a 60x clock), then at most the pacer's short spacing between
    # the offset query and the re-send (calls after a throttle are spaced, not fired at once)
    assert inner.sends == [(0, 30), (0, 30)] and clock.sleeps[0] == 2.0 and sum(clock.sleeps[1:]) < 0.01


def test_a_transient_lost_session_is_retried_a_bounded_number_of_times() -> None:
    lost = UploadSessionLostError("404 on the first fragment")
    inner = ScriptedSession(10, {1: (lost, 0), 2: (lost, 0)}, transient_lost=True)
    s, clock = wrapped(inner, lost_session_retries=2, lost_session_wait_s=5)
    assert s.send(0, bytes(10), True) is FILE and clock.sleeps == [5, 5]
    always = ScriptedSession(10, {i: (lost, 0) for i in range(1, 10)}, transient_lost=True)
    s, _ = wrapped(always, lost_session_retries=2)
    with pytest.raises(UploadSessionLostError):
        s.send(0, bytes(10), True)
    assert len(always.sends) == 3
    drive_like = ScriptedSession(10, {1: (lost, 0)})  # no transient_lost: a 404 means the session is gone
    s, _ = wrapped(drive_like)
    with pytest.raises(UploadSessionLostError):
        s.send(0, bytes(10), True)
    assert len(drive_like.sends) == 1


class ScriptedProvider:
    name = "scripted"
    hash_types = frozenset()

    def __init__(self, data: bytes, cut_after: list[int]) -> None:
        self.features = Features()
        self.data = data
        self.cut_after = cut_after  # for each open: bytes delivered before the stream breaks
        self.opens: list[tuple[int, int | None]] = []
        self.deletes = 0

    def open_range(self, entry: Entry, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        self.opens.append((start, end))
        cut = self.cut_after.pop(0) if self.cut_after else None

        def gen() -> Iterator[bytes]:
            stop = len(self.data) if end is None else end
            pos = start
            while pos < stop:
                if cut is not None and pos - start >= cut:
                    raise TransientError("connection reset")
                yield self.data[pos:pos + 10]
                pos += 10
        return gen()

    def delete(self, entry: Entry) -> None:
        self.deletes += 1
        if self.deletes == 1:
            raise TransientError("timeout (but the delete went through)")
        raise NotFoundError("gone")


def test_open_range_resumes_from_the_last_byte_received() -> None:
    data = bytes(range(100))
    inner = ScriptedProvider(data, [30, 20])
    p = RetryingProvider(inner, RetryPolicy(), Pacer("scripted-read", FakeClock()))  # type: ignore[arg-type]
    assert b"".join(p.open_range(FILE, 0, 100)) == data
    assert inner.opens == [(0, 100), (30, 100), (50, 100)]  # each re-open starts where the bytes stopped


def test_delete_whose_reply_was_lost_is_done() -> None:
    inner = ScriptedProvider(b"", [])
    p = RetryingProvider(inner, RetryPolicy(), Pacer("scripted-delete", FakeClock()))  # type: ignore[arg-type]
    p.delete(FILE)
    assert inner.deletes == 2


class FlakySetter:
    def __init__(self) -> None:
        self.calls = 0

    def set_modified(self, entry: Entry, modified: Any) -> Entry:
        self.calls += 1
        if self.calls == 1:
            raise ThrottledError("429", retry_after_s=3)
        return entry


def test_capabilities_are_retried_and_keep_their_shape() -> None:
    from dataclasses import replace

    from driveferry.providers.base import DeltaLister, ModTimeSetter
    inner = ScriptedProvider(b"", [])
    setter = FlakySetter()
    inner.features = replace(inner.features, mod_time=setter, chunk_multiple=7)  # type: ignore[arg-type]
    clock = FakeClock()
    p = RetryingProvider(inner, RetryPolicy(), Pacer("scripted-cap", clock))  # type: ignore[arg-type]
    mod_time = p.features.mod_time
    assert mod_time is not None and mod_time is not setter and p.features.chunk_multiple == 7
    assert isinstance(mod_time, ModTimeSetter) and not isinstance(mod_time, DeltaLister)
    assert mod_time.set_modified(FILE, None) is FILE  # type: ignore[arg-type]
    assert setter.calls == 2 and clock.sleeps == [3] and p.features.delta is None
