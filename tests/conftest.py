"""Shared fixtures: an in-process emulator (TLS, as msal requires) over a temporary data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from driveferry.emulator.server import Emulator
from realism_run import KIND_PROFILE, Profile, profiled_emulator


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator for the whole session. Tests must not assume an empty drive: use unique folders."""
    with Emulator(tmp_path_factory.mktemp("emulator"), tls=True) as emu:
        yield emu


@pytest.fixture()
def emu_profile(request: pytest.FixtureRequest) -> Profile:
    """The emulator a test runs against: kind unless the test is marked `@kind_and_real(...)`
    (tests/realism_run.py), which runs it once more under the realism profile on a scaled clock."""
    return getattr(request, "param", KIND_PROFILE)


@pytest.fixture()
def fresh_emulator(tmp_path: Path, emu_profile: Profile, request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """An emulator of this test's own (for counters, faults, quotas and restarts), kind or realistic as
    `emu_profile` says (a realistic one checks at teardown that the expected realism fired)."""
    with profiled_emulator(emu_profile, tmp_path / "emu", request) as emu:
        yield emu


@pytest.fixture()
def control(emulator: Emulator) -> requests.Session:
    """A requests session that trusts the emulator CA, for control-endpoint calls."""
    s = requests.Session()
    s.trust_env = False
    s.verify = str(emulator.ca_file)
    return s
