"""Fixtures of the contract suite: one `provider` per entry of FACTORIES, and a fresh folder per test."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from conformance_providers import FACTORIES, Subject

from driveferry.providers.base import Entry, Provider
from driveferry.providers.registry import provider_from_section


@pytest.fixture(params=sorted(FACTORIES))
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Subject:
    return FACTORIES[request.param](request, tmp_path)


@pytest.fixture()
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture()
def provider(subject: Subject, state_dir: Path) -> Provider:
    return provider_from_section("conformance", subject.section, state_dir)


@pytest.fixture()
def base(provider: Provider) -> Entry:
    """A fresh, empty folder of this test's own under the provider's root."""
    return provider.mkdir(provider.root(), f"t-{uuid.uuid4().hex[:10]}")


@pytest.fixture()
def chunk(provider: Provider) -> int:
    """An upload chunk: the smallest multiple of the provider's chunk multiple that is >= 256 KiB."""
    multiple = provider.features.chunk_multiple
    return -(-(256 * 1024) // multiple) * multiple
