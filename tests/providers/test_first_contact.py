"""A remote that has never answered in this process: a few tries and one line naming it and its URL, or
(retry_first_contact) retried for as long as asked; once it has answered, failures are waited out as
before. Fake clock: no real sleeping, no timing."""

from __future__ import annotations

import pytest

from driveferry.errors import TransientError
from driveferry.providers.pacing import Pacer, RetryPolicy
from driveferry.providers.registry import retry_policy
from driveferry.providers.retrying import Retrier


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def refusing(n: int) -> tuple[list[int], object]:
    calls = [0]

    def fn() -> str:
        calls[0] += 1
        if calls[0] <= n:
            raise TransientError("stat: network error (ConnectionRefusedError)")
        return "ok"
    return calls, fn


def test_never_answered_names_the_remote_the_url_and_the_key_to_wait() -> None:
    clock = FakeClock()
    r = Retrier(RetryPolicy(base_delay_s=1), Pacer("work", clock, rng=lambda: 1.0), "https://127.0.0.1:8443")
    calls, fn = refusing(100)
    with pytest.raises(TransientError) as err:
        r.call(fn, "stat")  # type: ignore[arg-type]
    assert calls[0] == 4 and clock.now == 1 + 2 + 4
    text = str(err.value)
    assert text.startswith("work: cannot reach https://127.0.0.1:8443 (stat: network error") and "\n" not in text
    assert 'retry_first_contact = "10m" in [remotes.work]' in text


def test_retry_first_contact_keeps_trying_that_long_then_says_it_ran_out() -> None:
    policy = retry_policy({"retry_first_contact": "30s", "retry_base_delay_s": 1, "retry_max_delay_s": 4}, "work")
    assert policy.first_contact_give_up_s == 30
    clock = FakeClock()
    r = Retrier(policy, Pacer("work", clock, rng=lambda: 1.0), "https://example.invalid")
    calls, fn = refusing(100)
    with pytest.raises(TransientError, match=r'retry_first_contact = "30s" ran out'):
        r.call(fn, "stat")  # type: ignore[arg-type]
    assert 30 <= clock.now <= 34 and calls[0] > 4
    clock2 = FakeClock()
    r2 = Retrier(policy, Pacer("work2", clock2, rng=lambda: 1.0))
    calls, fn = refusing(6)  # the network comes up within the patience: the call succeeds
    assert r2.call(fn, "stat") == "ok" and calls[0] == 7 and r2.pacer.reached  # type: ignore[arg-type]


def test_a_remote_that_answered_once_is_retried_after_a_drop() -> None:
    clock = FakeClock()
    r = Retrier(RetryPolicy(base_delay_s=1, max_delay_s=2), Pacer("up", clock, rng=lambda: 1.0))
    assert r.call(lambda: "first", "stat") == "first"
    calls, fn = refusing(20)  # the connection drops for a while: far more than the first-contact tries
    assert r.call(fn, "stat") == "ok" and calls[0] == 21  # type: ignore[arg-type]
