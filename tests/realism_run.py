"""End-to-end tests run twice: against the kind emulator and under the realism profile on a scaled clock.

A test opts in with `@kind_and_real(...)`: it then runs as `[kind]` and `[real]`, and the shared fixtures
that build its emulator (`world` in tests/migrate/world.py, `fresh_emulator` in tests/conftest.py, the
verify fixtures through `profiled_emulator`) take the `emu_profile` fixture's `Profile`. Under `real` the
emulator loads tests/realism_test.toml (clock 200x; rate limits scaled so they still refuse; every
credentials section then carries `time_scale` and the remotes file passes it to driveferry's retry layer).

A `[real]` variant must prove the realism reached its traffic: when the test's emulator closes, the
counters of `GET /_emulator/realism` named in `kind_and_real(...)` must each be above zero, else the test
errors ("a test that passes only because the emulator is kind proves nothing").
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator.realism import Realism
from driveferry.emulator.server import Emulator

PROFILE_FILE = Path(__file__).with_name("realism_test.toml")
KIND, REAL = "kind", "real"
LOG_ENV = "DRIVEFERRY_TEST_REALISM_LOG"  # a file: each check appends {"test", "counters"} (to tune the profile)


@dataclass(frozen=True)
class Profile:
    """Which emulator a test runs against; `expect`: realism counters that must fire under `real`."""

    name: str = KIND
    expect: tuple[str, ...] = ()

    @property
    def real(self) -> bool:
        return self.name == REAL

    def realism(self) -> Realism | None:
        return Realism.load(PROFILE_FILE) if self.real else None

    def emulator(self, data_dir: Path, **kwargs: Any) -> Emulator:
        return Emulator(data_dir, tls=True, realism=self.realism(), **kwargs)

    def check(self, emu: Emulator) -> dict[str, int]:
        """The realism counters now; AssertionError if an expected one did not fire (real only)."""
        counters = realism_counters(emu)
        if log := os.environ.get(LOG_ENV):
            with open(log, "a", encoding="utf-8") as out:
                out.write(json.dumps({"test": os.environ.get("PYTEST_CURRENT_TEST"), "counters": counters}) + "\n")
        if self.real:
            assert emu.realism.settings.clock_scale > 1, "the [real] variant must run on a scaled clock"
            missing = [name for name in self.expect if counters.get(name, 0) <= 0]
            assert not missing, f"realism that this test's traffic must meet did not fire: {missing}; {counters}"
        return counters


KIND_PROFILE = Profile()


def kind_and_real(*expect: str) -> pytest.MarkDecorator:
    """Run the test as [kind] and [real]; under real, each of `expect` (e.g. "drive.rate_limited",
    "graph.throttled") must have fired by the time its emulator closes. At least one: a [real] run that
    need not meet any realism proves nothing the [kind] run does not."""
    if not expect:
        raise ValueError("kind_and_real needs the realism counters the test's traffic must meet")
    return pytest.mark.parametrize("emu_profile", [Profile(KIND), Profile(REAL, tuple(expect))],
                                   ids=[KIND, REAL], indirect=True)


def realism_counters(emu: Emulator) -> dict[str, int]:
    """`GET /_emulator/realism` counters, over HTTP like any client of the control API."""
    with requests.Session() as s:
        s.trust_env = False
        r = s.get(emu.base_url + "/_emulator/realism", verify=str(emu.ca_file), timeout=30)
        r.raise_for_status()
        return {k: int(v) for k, v in r.json()["counters"].items()}


@contextmanager
def profiled_emulator(profile: Profile, data_dir: Path, request: pytest.FixtureRequest | None = None,
                      **kwargs: Any) -> Iterator[Emulator]:
    """An emulator for `profile`; on a normal exit the profile's expected realism must have fired. With
    the fixture's `request`, a test that already failed is not checked (its traffic stopped short)."""
    failed_before = request.session.testsfailed if request is not None else 0
    with profile.emulator(data_dir, **kwargs) as emu:
        yield emu
        if request is None or request.session.testsfailed == failed_before:
            profile.check(emu)
