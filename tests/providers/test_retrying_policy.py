"""The retry policy and the per-remote pacer, on a fake clock (no real sleeping, no timing)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httplib2
import pytest
import requests

from driveferry.errors import NotFoundError, PermanentError, ThrottledError, TransientError
from driveferry.providers.gdrive.errors import translate as drive_translate
from driveferry.providers.onedrive.errors import parse_retry_after
from driveferry.providers.onedrive.errors import translate as graph_translate
from driveferry.providers.pacing import Pacer, RetryEvent, RetryPolicy, pacer_for
from driveferry.providers.registry import retry_policy
from driveferry.providers.retrying import Retrier


class FakeClock:
    """Monotonic time that moves only when someone sleeps; records every sleep. Thread-safe."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def monotonic(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(seconds)
            self.now += seconds


def failing(errors: list[Exception], result: str = "ok") -> tuple[list[int], object]:
    calls = [0]

    def fn() -> str:
        calls[0] += 1
        if errors:
            raise errors.pop(0)
        return result
    return calls, fn


def retrier(policy: RetryPolicy, rng: float = 1.0, name: str = "r") -> tuple[Retrier, FakeClock, list[RetryEvent]]:
    clock = FakeClock()
    pacer = Pacer(name, clock, rng=lambda: rng)
    pacer.reached = True  # the remote has answered before (see the first-contact test)
    events: list[RetryEvent] = []
    pacer.observers.append(events.append)
    return Retrier(policy, pacer), clock, events


def test_backoff_grows_is_capped_and_jittered() -> None:
    p = RetryPolicy(base_delay_s=1, max_delay_s=8)
    assert [p.cap_s(n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert [p.backoff_s(n, 0, lambda: 1.0) for n in range(1, 6)] == [1, 2, 4, 8, 8]
    assert [p.backoff_s(n, 0, lambda: 0.25) for n in range(1, 5)] == [0.25, 0.5, 1, 2]  # full jitter
    d = RetryPolicy(base_delay_s=1, max_delay_s=8, jitter="decorrelated")
    assert d.backoff_s(1, 1, lambda: 0.0) == 1  # never below the base
    assert d.backoff_s(2, 2, lambda: 1.0) == 6  # up to 3 x the previous
    assert d.backoff_s(3, 6, lambda: 1.0) == 8  # truncated at the cap


def test_transient_errors_back_off_then_succeed() -> None:
    r, clock, events = retrier(RetryPolicy(base_delay_s=1, max_delay_s=4))
    calls, fn = failing([TransientError("503", status=503)] * 4)
    assert r.call(fn, "stat x") == "ok"  # type: ignore[arg-type]
    assert calls[0] == 5 and clock.sleeps == [1, 2, 4, 4]
    assert [(e.remote, e.op, e.wait_s, e.reason, e.attempt) for e in events] == [
        ("r", "stat x", w, "503", n) for n, w in enumerate([1, 2, 4, 4], 1)]


def test_retry_after_is_honoured_exactly_and_scaled() -> None:
    r, clock, _ = retrier(RetryPolicy(time_scale=10))
    _, fn = failing([ThrottledError("429", retry_after_s=120, status=429), ThrottledError("429", retry_after_s=30)])
    assert r.call(fn, "list") == "ok"  # type: ignore[arg-type]
    assert clock.sleeps == [12.0, 3.0]  # remote seconds divided by the remote's time_scale


def test_other_errors_are_not_retried() -> None:
    r, clock, _ = retrier(RetryPolicy())
    for exc in (PermanentError("400"), NotFoundError("404")):
        calls, fn = failing([exc])
        with pytest.raises(type(exc)):
            r.call(fn, "x")  # type: ignore[arg-type]
        assert calls[0] == 1
    assert clock.sleeps == []


def test_give_up_time_bounds_the_waiting() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=16, give_up_s=1000, transient_give_up_s=100)
    r, clock, _ = retrier(policy)
    calls, fn = failing([TransientError("500")] * 1000)
    with pytest.raises(TransientError):
        r.call(fn, "x")  # type: ignore[arg-type]
    assert sum(clock.sleeps) <= 100 and sum(clock.sleeps) + 16 > 100  # 5xx: the shorter limit
    assert calls[0] == len(clock.sleeps) + 1
    r, clock, _ = retrier(policy)
    _, fn = failing([ThrottledError("429", retry_after_s=300)] * 1000)
    with pytest.raises(ThrottledError):
        r.call(fn, "x")  # type: ignore[arg-type]
    assert clock.sleeps == [300, 300, 300]  # throttles: the longer one, each Retry-After in full


def test_time_spent_on_throttles_does_not_count_against_the_transient_limit() -> None:
    """retry_transient_give_up bounds a run of 5xx / network errors, not the call: a call throttled for
    longer than that (each Retry-After waited in full) still retries the 5xx that follows, and gives up
    only when 5xx alone have lasted the limit (or throttles and all, retry_give_up)."""
    policy = RetryPolicy(base_delay_s=1, max_delay_s=16, give_up_s=10_000, transient_give_up_s=100)
    r, clock, _ = retrier(policy)
    _, fn = failing([ThrottledError("429", retry_after_s=60)] * 3 + [TransientError("503", status=503)] * 3)
    assert r.call(fn, "read_many") == "ok"  # type: ignore[arg-type]  (it gave up at the first 503 before)
    assert clock.sleeps[:3] == [60, 60, 60] and len(clock.sleeps) == 6
    r, clock, _ = retrier(policy)
    calls, fn = failing([ThrottledError("429", retry_after_s=60)] * 3 + [TransientError("503")] * 1000)
    with pytest.raises(TransientError):
        r.call(fn, "read_many")  # type: ignore[arg-type]
    transient = clock.sleeps[3:]
    assert clock.sleeps[:3] == [60, 60, 60] and sum(transient) <= 100 and sum(transient) + 16 > 100


def test_a_throttle_holds_every_caller_of_that_remote_only() -> None:
    clock = FakeClock()
    shared, other = Pacer("gd", clock, rng=lambda: 1.0), Pacer("od", clock, rng=lambda: 1.0)
    policy = RetryPolicy()
    a, b, c = Retrier(policy, shared), Retrier(policy, shared), Retrier(policy, other)
    _, fn = failing([ThrottledError("429", retry_after_s=30)], "a")
    assert a.call(fn, "a") == "a" and clock.sleeps == [30]  # type: ignore[arg-type]
    # a throttle met by one thread: a call from another thread on the same remote waits it out first
    shared.throttled(policy, ThrottledError("429", retry_after_s=7))
    start, when_called = clock.monotonic(), []
    t = threading.Thread(target=lambda: b.call(lambda: when_called.append(clock.monotonic()), "b"))
    t.start()
    t.join()
    assert when_called == [start + 7]
    assert c.call(lambda: clock.monotonic(), "c") == start + 7  # another remote: no wait at all
    assert shared.stats.waits == 2 and shared.stats.waited_s == 37 and other.stats.waits == 0


def test_shared_level_grows_across_callers_and_relaxes_on_success() -> None:
    clock = FakeClock()
    pacer = Pacer("gd", clock, rng=lambda: 1.0)
    policy = RetryPolicy(base_delay_s=1, max_delay_s=64)
    drive_throttle = ThrottledError("403 rateLimitExceeded", retry_after_s=0.0)  # Drive sends no Retry-After
    assert [pacer.throttled(policy, drive_throttle) for _ in range(4)] == [1, 2, 4, 8]
    pacer.succeeded()
    assert pacer.throttled(policy, drive_throttle) == 1


def test_pacers_are_per_remote_name_and_shared_across_threads() -> None:
    got: list[Pacer] = []
    threads = [threading.Thread(target=lambda: got.append(pacer_for("same-remote"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(p) for p in got}) == 1 and pacer_for("another-remote") is not got[0]


def _drive_resp(status: int, **headers: str) -> httplib2.Response:
    return httplib2.Response({"status": str(status), **headers})


def _drive_body(reason: str, message: str) -> bytes:
    import json
    return json.dumps({"error": {"code": 403, "message": message,
                                 "errors": [{"reason": reason, "message": message}]}}).encode()


def test_drive_retry_after_as_seconds_and_as_date_relative_to_the_response_date() -> None:
    server_now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)  # not our clock: the server's Date counts
    later = format_datetime(server_now + timedelta(seconds=90), usegmt=True)
    err = drive_translate(_drive_resp(429, **{"retry-after": later, "date": format_datetime(server_now, usegmt=True)}))
    assert isinstance(err, ThrottledError) and err.retry_after_s == 90
    err = drive_translate(_drive_resp(429, **{"retry-after": "7"}))
    assert isinstance(err, ThrottledError) and err.retry_after_s == 7


@pytest.mark.parametrize("reason", ["rateLimitExceeded", "userRateLimitExceeded", "sharingRateLimitExceeded"])
def test_drive_rate_limits_are_throttles_without_a_hint(reason: str) -> None:
    err = drive_translate(_drive_resp(403), _drive_body(reason, "Rate Limit Exceeded"))
    assert isinstance(err, ThrottledError) and err.retry_after_s == 0.0  # 0: back off exponentially


@pytest.mark.parametrize("reason", ["rateLimitExceeded", "userRateLimitExceeded"])
def test_drive_daily_cap_is_told_apart_by_its_message(reason: str) -> None:
    from driveferry.errors import QuotaExceededError
    err = drive_translate(_drive_resp(403), _drive_body(reason, "User rate limit exceeded."))
    assert isinstance(err, QuotaExceededError) and err.kind == "daily_upload"
    full = drive_translate(_drive_resp(403), _drive_body("quotaExceeded", "The user has exceeded their Drive storage quota"))
    assert isinstance(full, QuotaExceededError) and full.kind == "storage"


def test_drive_backend_error_is_transient() -> None:
    err = drive_translate(_drive_resp(503), _drive_body("backendError", "Backend Error"))
    assert type(err) is TransientError


def _graph_resp(status: int, code: str | None = None, **headers: str) -> requests.Response:
    import json
    r = requests.Response()
    r.status_code = status
    r.headers.update(headers)
    r._content = json.dumps({"error": {"code": code}}).encode() if code else b""
    r.request = requests.Request("GET", "https://graph.example/v1.0/me/drive").prepare()
    return r


@pytest.mark.parametrize("status,code", [(429, "activityLimitReached"), (503, "serviceNotAvailable"),
                                         (509, None)])
def test_graph_throttles_carry_retry_after(status: int, code: str | None) -> None:
    err = graph_translate(_graph_resp(status, code, **{"Retry-After": "41"}))
    assert isinstance(err, ThrottledError) and err.retry_after_s == 41


def test_graph_retry_after_date_is_read_against_the_response_date() -> None:
    server_now = datetime(2031, 5, 5, 8, 0, tzinfo=UTC)
    headers = {"Retry-After": format_datetime(server_now + timedelta(seconds=315), usegmt=True),
               "Date": format_datetime(server_now, usegmt=True)}
    err = graph_translate(_graph_resp(429, "activityLimitReached", **headers))
    assert isinstance(err, ThrottledError) and err.retry_after_s == 315
    assert parse_retry_after(headers["Retry-After"], date=headers["Date"]) == 315
    assert type(graph_translate(_graph_resp(503, "serviceNotAvailable"))) is TransientError  # no hint: back off


def test_policy_from_a_remote_section() -> None:
    p = retry_policy({"time_scale": 50, "retry_give_up": "2h", "retry_jitter": "decorrelated"})
    assert (p.time_scale, p.give_up_s, p.jitter) == (50, 7200, "decorrelated")
    assert retry_policy({"retry_give_up": "never"}).give_up_s is None
    assert retry_policy({"retry_transient_give_up": "90s"}).transient_give_up_s == 90
    assert retry_policy({}).transient_give_up_s == 15 * 60
    assert retry_policy({}).time_scale == 1 and retry_policy({}).give_up_s == 6 * 3600
    from driveferry.errors import UserError
    with pytest.raises(UserError):
        retry_policy({"time_scale": 0}, "gd")


def test_a_remote_never_reached_fails_in_a_few_tries() -> None:
    clock = FakeClock()
    r = Retrier(RetryPolicy(base_delay_s=1, first_contact_attempts=3), Pacer("nowhere", clock, rng=lambda: 1.0))
    calls, fn = failing([TransientError("connection refused")] * 100)
    with pytest.raises(TransientError):
        r.call(fn, "stat")  # type: ignore[arg-type]
    assert calls[0] == 3 and clock.sleeps == [1, 2]
    assert r.call(lambda: "up", "stat") == "up" and r.pacer.reached
    calls, fn = failing([TransientError("503")] * 5)
    assert r.call(fn, "stat") == "ok" and calls[0] == 6  # type: ignore[arg-type]  # reached: waited out


def test_after_a_throttle_calls_are_spaced_and_the_spacing_decays_with_successes() -> None:
    """Threads that waited out one throttle do not all call again at the same moment (that made several
    refused calls per accepted one under Drive's per-user write limit): calls are spaced by a learned
    interval that doubles per throttle and shrinks by a quarter per success, to none once it is small."""
    clock = FakeClock()
    pacer = Pacer("gd", clock, rng=lambda: 1.0)
    policy = RetryPolicy(base_delay_s=1, max_delay_s=64)
    drive_throttle = ThrottledError("403 rateLimitExceeded", retry_after_s=0.0)
    assert pacer.interval_s == 0 and pacer.wait_turn("calm") == 0 and pacer.wait_turn("calm") == 0
    pacer.throttled(policy, drive_throttle)
    pacer.throttled(policy, drive_throttle)
    assert pacer.interval_s == 0.5  # a quarter of the base delay, doubled by the second throttle
    start = clock.monotonic()
    starts = []
    for _ in range(4):
        pacer.wait_turn("write")
        starts.append(clock.monotonic())
    # the first waits out the throttle's "not before" (1 s + 2 s), the others follow 0.5 s apart
    assert starts == [start + 2, start + 2.5, start + 3, start + 3.5]
    assert pacer.stats.waits == 1 and pacer.stats.paced_s == 1.5
    successes = 0
    while pacer.interval_s:
        pacer.succeeded()
        successes += 1
    assert 5 <= successes <= 20  # geometric decay, not a reset after one success
    before = clock.monotonic()
    pacer.wait_turn("calm again")
    pacer.wait_turn("calm again")
    assert clock.monotonic() == before
