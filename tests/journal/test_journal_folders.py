"""Schema 2: the destination folders a job made (first recorded wins) and the source's created time; a
version 1 journal is upgraded in place, on SQLite and on PostgreSQL. Schema 4: running item totals."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from driveferry.journal import SCHEMA_VERSION, Journal, PlannedItem
from driveferry.journal.db import to_url
from driveferry.journal.records import ItemState, StateTotal


def test_the_first_folder_recorded_for_a_path_wins(journal: Journal) -> None:
    job = journal.get_or_create_job("src", "dst")
    other = journal.get_or_create_job("src", "elsewhere")
    assert journal.dest_folder(job.id, "Archive/a") is None
    assert journal.settle_dest_folder(job.id, "Archive/a", "mine") == "mine"
    assert journal.settle_dest_folder(job.id, "Archive/a", "twin") == "mine"  # a later worker adopts it
    assert journal.settle_dest_folder(other.id, "Archive/a", "theirs") == "theirs"  # per job
    assert journal.dest_folder(job.id, "Archive/a") == "mine"
    assert journal.dest_folders(job.id) == {"Archive/a": "mine"}


def test_source_created_time_is_kept(journal: Journal) -> None:
    job = journal.get_or_create_job("src", "dst")
    born = datetime(2019, 5, 6, 7, 8, 9, tzinfo=UTC)
    journal.plan_items(job.id, [PlannedItem("a.bin", "id-a", "file", 3, born, {}, created=born)])
    [item] = journal.claim(job.id, "w", 60)
    assert item.source_created == born


def _drop_totals(conn: sa.Connection) -> None:
    """Undo schema 4: no item_totals, no triggers, the lease-owner index over every item, and
    items.created_at back (NOT NULL, as schema 3 had it)."""
    stamp = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    conn.execute(sa.text(f"ALTER TABLE items ADD COLUMN created_at {stamp} NOT NULL DEFAULT '2026-01-01 00:00:00'"))
    if conn.dialect.name == "sqlite":
        for name in ("insert", "delete", "update", "move"):
            conn.execute(sa.text(f"DROP TRIGGER items_totals_{name}"))
    else:
        conn.execute(sa.text("DROP TRIGGER items_totals ON items"))
    conn.execute(sa.text("DROP TABLE item_totals"))
    conn.execute(sa.text("DROP INDEX items_lease_owner"))
    conn.execute(sa.text("CREATE INDEX items_lease_owner ON items (lease_owner)"))


def _as_version_3(url: str) -> None:
    engine = sa.create_engine(to_url(url))
    with engine.begin() as conn:
        _drop_totals(conn)
        conn.execute(sa.text("UPDATE schema_version SET version = 3"))
    engine.dispose()


def _as_version_1(url: str) -> None:
    """Turn a fresh journal back into what driveferry with schema 1 wrote."""
    engine = sa.create_engine(to_url(url))
    with engine.begin() as conn:
        _drop_totals(conn)
        conn.execute(sa.text("DROP TABLE dest_folders"))
        conn.execute(sa.text("ALTER TABLE items DROP COLUMN source_created"))
        conn.execute(sa.text("ALTER TABLE items ADD COLUMN hash_state TEXT"))  # dropped by schema 3
        conn.execute(sa.text("UPDATE schema_version SET version = 1"))
    engine.dispose()


def test_a_version_1_journal_is_upgraded(journal_url: str) -> None:
    with Journal.open(journal_url) as j:
        job = j.get_or_create_job("src", "dst")
        j.plan_items(job.id, [PlannedItem("a.bin", "id-a", "file", 3)])
    _as_version_1(journal_url)
    with Journal.open(journal_url) as j:
        assert j.schema_version() == SCHEMA_VERSION == 4
        [item] = j.claim(job.id, "w", 60)  # the old item is still there, with no created time
        assert (item.path, item.source_created) == ("a.bin", None)
        assert j.settle_dest_folder(job.id, "Archive", "f1") == "f1"


def test_a_version_2_journal_loses_its_unused_hash_state(journal_url: str) -> None:
    with Journal.open(journal_url) as j:
        job = j.get_or_create_job("src", "dst")
        j.plan_items(job.id, [PlannedItem("a.bin", "id-a", "file", 3)])
    engine = sa.create_engine(to_url(journal_url))
    with engine.begin() as conn:
        _drop_totals(conn)
        conn.execute(sa.text("ALTER TABLE items ADD COLUMN hash_state TEXT"))
        conn.execute(sa.text("UPDATE schema_version SET version = 2"))
    engine.dispose()
    with Journal.open(journal_url) as j:
        assert j.schema_version() == 4
        [item] = j.claim(job.id, "w", 60)
        j.checkpoint(item.id, "w", "tok", 0)
    engine = sa.create_engine(to_url(journal_url))
    with engine.connect() as conn:
        assert "hash_state" not in {c["name"] for c in sa.inspect(conn).get_columns("items")}
    engine.dispose()


def test_a_version_3_journal_gets_running_totals_equal_to_a_recount(journal_url: str) -> None:
    with Journal.open(journal_url) as j:
        job = j.get_or_create_job("src", "dst")
        j.plan_items(job.id, [PlannedItem(f"f{i}.bin", f"id-{i}", "file", 10 + i) for i in range(5)]
                     + [PlannedItem("d", "id-d", "folder", None)])
        [a, b] = j.claim(job.id, "w", 60, limit=2)
        j.complete(a.id, "dest-a", {"md5": "00"}, a.size_bytes or 0)
    _as_version_3(journal_url)
    with Journal.open(journal_url) as j:
        assert j.schema_version() == 4
        j.complete(b.id, "dest-b", {}, b.size_bytes or 0)  # after the upgrade: the triggers count it
        counts = j.counts(job.id, files_only=True)
        assert counts[ItemState.DONE] == StateTotal(items=2, size_bytes=21, bytes_done=21)
        assert counts[ItemState.PENDING] == StateTotal(items=3, size_bytes=12 + 13 + 14, bytes_done=0)
        assert j.counts(job.id)[ItemState.PENDING].items == 4  # with the folder
        assert j.count_unhashed_done(job.id) == 1
    engine = sa.create_engine(to_url(journal_url))
    with engine.connect() as conn:
        assert "created_at" not in {c["name"] for c in sa.inspect(conn).get_columns("items")}
        assert "item_totals" in sa.inspect(conn).get_table_names()
    engine.dispose()
