"""Opening a journal: locations, schema versions and upgrades, and one-line errors for bad journals."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from driveferry.errors import JournalError, UserError
from driveferry.journal import SCHEMA_VERSION, Journal, schema
from driveferry.journal import db as journal_db
from driveferry.journal.db import to_url


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_locations_map_to_urls(tmp_path: Path) -> None:
    assert to_url(str(tmp_path / "a.db")) == sa.URL.create("sqlite", database=str(tmp_path / "a.db"))
    assert to_url("rel/j.db").database == str(Path("rel/j.db").absolute())
    assert to_url("postgres://u:p@h:5433/db").drivername == "postgresql+psycopg"
    assert to_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert to_url("sqlite:////tmp/x.db").database == "/tmp/x.db"
    with pytest.raises(UserError, match="unsupported journal URL scheme 'mysql'"):
        to_url("mysql://u@h/db")
    for memory in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(UserError, match="in-memory journal"):
            to_url(memory)


def test_open_creates_parent_folders_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "journal.db"
    with Journal.open(str(path)) as j:
        assert j.schema_version() == SCHEMA_VERSION
        assert j.dialect == "sqlite" and j.label == str(path)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _stamp(url: str, version: int) -> None:
    engine = sa.create_engine(to_url(url))
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.schema_version).values(
            version=version, applied_at=datetime.now(UTC), written_by="driveferry 9.0"))
    engine.dispose()


def test_journal_from_a_newer_driveferry_is_refused(journal_url: str) -> None:
    Journal.open(journal_url).close()
    _stamp(journal_url, SCHEMA_VERSION + 5)
    with pytest.raises(JournalError) as err:
        Journal.open(journal_url)
    text = _one_line(err.value)
    assert f"schema version {SCHEMA_VERSION + 5}, newer than this driveferry reads ({SCHEMA_VERSION})" in text
    assert "upgrade driveferry" in text


def test_older_journal_is_upgraded_step_by_step(journal_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Journal.open(journal_url) as j:
        j.get_or_create_job("src", "dst")
    ran: list[int] = []

    def add_note(conn: sa.Connection) -> None:
        ran.append(1)
        conn.execute(sa.text("ALTER TABLE jobs ADD COLUMN note TEXT"))

    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(schema, "UPGRADES", {SCHEMA_VERSION: add_note})
    with Journal.open(journal_url) as j:
        assert j.schema_version() == SCHEMA_VERSION + 1
        assert [job.source_spec for job in j.jobs()] == ["src"]  # data survives the upgrade
    with Journal.open(journal_url) as j:  # already upgraded: the step does not run twice
        assert j.schema_version() == SCHEMA_VERSION + 1
    assert ran == [1]
    engine = sa.create_engine(to_url(journal_url))
    assert "note" in {c["name"] for c in sa.inspect(engine).get_columns("jobs")}
    engine.dispose()


def test_missing_upgrade_step_is_an_error(journal_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    Journal.open(journal_url).close()
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(schema, "UPGRADES", {})
    with pytest.raises(JournalError, match="cannot upgrade"):
        Journal.open(journal_url)


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_corrupt_file_is_a_journal_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(content)
    with pytest.raises(JournalError) as err:
        Journal.open(str(path))
    text = _one_line(err.value)
    assert str(path) in text and "not a driveferry journal or is corrupt" in text


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "photos.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE photos (id INTEGER)")
    with pytest.raises(JournalError, match="not a driveferry journal: give --journal a new file name"):
        Journal.open(str(path))


def test_unopenable_path_is_a_journal_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(JournalError) as err:
        Journal.open(str(tmp_path / "dir.db"))
    _one_line(err.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(JournalError, match="cannot create its folder"):
        Journal.open(str(tmp_path / "file" / "journal.db"))


def test_unreachable_server_hides_the_password() -> None:
    with pytest.raises(JournalError) as err:
        Journal.open("postgresql://ferry:s3cret-pw@127.0.0.1:1/journal")
    text = _one_line(err.value)
    assert "s3cret-pw" not in text and "127.0.0.1:1" in text


def test_writer_busy_past_the_timeout_is_a_journal_error(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "journal.db"
    monkeypatch.setattr(journal_db, "BUSY_TIMEOUT_S", 0.2)
    with Journal.open(str(path)) as j:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(JournalError, match="database is locked"):
                j.get_or_create_job("src", "dst")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert j.get_or_create_job("src", "dst").id == 1  # fine once the other writer is gone


def test_missing_driver_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_psycopg(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("psycopg"):
            raise ModuleNotFoundError("No module named 'psycopg'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    with pytest.raises(UserError, match=r"pip install 'driveferry\[postgres\]'"):
        Journal.open("postgresql://u@127.0.0.1:1/db")
