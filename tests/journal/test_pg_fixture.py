"""The PostgreSQL fixture's own rules: skip locally, fail under CI, find the binaries."""

from __future__ import annotations

import pytest

from pg import find_pg_bin, unavailable


def test_missing_postgres_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run under CI: no binaries"):
        unavailable("no binaries")


def test_missing_postgres_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no binaries"):
        unavailable("no binaries")


def test_found_binaries_are_runnable() -> None:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        unavailable("no PostgreSQL server binaries")
    assert bin_dir is not None
    assert (bin_dir / "initdb").is_file() and (bin_dir / "pg_ctl").is_file()
