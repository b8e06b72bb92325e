"""Journal fixtures: every store test runs on SQLite and on PostgreSQL, with a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from journal_helpers import FakeClock

from driveferry.journal import Journal
from pg import pg_server, pg_url  # noqa: F401  (fixtures)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh journal location: an SQLite file in a not-yet-existing folder, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "state" / "journal.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def journal(journal_url: str, clock: FakeClock) -> Iterator[Journal]:
    with Journal.open(journal_url, clock=clock) as j:
        yield j
