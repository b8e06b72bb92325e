"""Shared fixtures: an in-process emulator (TLS, as msal requires) over a temporary data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from driveferry.emulator.server import Emulator


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator for the whole session. Tests must not assume an empty drive: use unique folders."""
    with Emulator(tmp_path_factory.mktemp("emulator"), tls=True) as emu:
        yield emu


@pytest.fixture()
def fresh_emulator(tmp_path: Path) -> Iterator[Emulator]:
    """An emulator of this test's own (for counters, faults, quotas and restarts)."""
    with Emulator(tmp_path / "emu", tls=True) as emu:
        yield emu


@pytest.fixture()
def control(emulator: Emulator) -> requests.Session:
    """A requests session that trusts the emulator CA, for control-endpoint calls."""
    s = requests.Session()
    s.trust_env = False
    s.verify = str(emulator.ca_file)
    return s
