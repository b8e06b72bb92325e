"""The journal's tables (SQLAlchemy Core, one schema for SQLite and PostgreSQL) and their versioning.

`ensure_schema` creates a fresh journal at SCHEMA_VERSION, upgrades an older one step by step (UPGRADES),
and refuses one written by a newer driveferry. JSON values are stored as text (sorted keys) so that both
databases compare them the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from driveferry.errors import JournalError

#: The version this code writes. Bump it and append a step to UPGRADES when the tables change.
SCHEMA_VERSION = 4

#: UPGRADES[n] turns a journal of version n into version n + 1, inside the upgrade transaction.
#: A fresh journal is created from `metadata` directly and stamped SCHEMA_VERSION, so a step only
#: ever sees a journal of exactly its own version.
UPGRADES: dict[int, Callable[[Connection], None]] = {}  # filled at the end of the module

# PostgreSQL advisory-lock key serialising schema creation between workers starting together.
_SCHEMA_LOCK_KEY = 0x64665F6A6F75726E  # "df_journ"


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on both databases.

    SQLite stores naive text, so aware values are converted to UTC and stripped on the way in and
    labelled UTC on the way out; PostgreSQL's timestamptz comes back in the session time zone.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the journal stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BIGINT primary keys on PostgreSQL; SQLite autoincrements only an INTEGER PRIMARY KEY.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
    sa.Column("written_by", sa.Text, nullable=False),
)

jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("source_spec", sa.Text, nullable=False),
    sa.Column("dest_spec", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("source_spec", "dest_spec", name="jobs_specs_key"),
)

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("job_id", _BigId, sa.ForeignKey("jobs.id"), nullable=False, index=True),
    sa.Column("worker_id", sa.Text, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("options", sa.Text, nullable=False),  # JSON
    sa.Column("summary", sa.Text),  # JSON
)

items = sa.Table(
    "items", metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("job_id", _BigId, sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("source_id", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("modified", UTCDateTime),
    sa.Column("source_created", UTCDateTime),  # the source's creation time, set on the copy where possible
    sa.Column("source_hashes", sa.Text, nullable=False, server_default="{}"),  # JSON {type: hex}
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("dest_id", sa.Text),
    sa.Column("dest_hashes", sa.Text, nullable=False, server_default="{}"),  # JSON {type: hex}
    sa.Column("bytes_done", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("session_token", sa.Text),
    sa.Column("committed_offset", sa.BigInteger),
    sa.Column("session_started_at", UTCDateTime),
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_expires_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("job_id", "path", name="items_job_path_key"),
    # claim() scans one job's pending (and expired in-progress) items in id order.
    sa.Index("items_job_state_id", "job_id", "state", "id"),
)
# release() finds a worker's leases; only leased items are indexed (most items hold none), which keeps
# about 10 bytes per item out of the journal. Written as DDL, one statement both SQLite and PostgreSQL
# take: an Index with sqlite_where/postgresql_where makes SQLAlchemy import both dialects to check
# those names, PostgreSQL's with all its drivers (~50 ms of every run's start-up, on SQLite too).
LEASE_INDEX = sa.DDL(  # type: ignore[no-untyped-call]
    "CREATE INDEX items_lease_owner ON items (lease_owner) WHERE lease_owner IS NOT NULL")
sa.event.listen(items, "after_create", LEASE_INDEX)

# Per (job, state, folder, done-without-destination-hash): items, source bytes, bytes sent. Kept by
# triggers on items (journal/totals.py), so status reads these rows instead of scanning every item.
item_totals = sa.Table(
    "item_totals", metadata,
    sa.Column("job_id", _BigId, primary_key=True, autoincrement=False),
    sa.Column("state", sa.String(16), primary_key=True),
    sa.Column("folder", sa.Boolean, primary_key=True),
    sa.Column("unhashed", sa.Boolean, primary_key=True),
    sa.Column("item_count", sa.BigInteger, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("bytes_done", sa.BigInteger, nullable=False),
)

item_errors = sa.Table(
    "item_errors", metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("item_id", _BigId, sa.ForeignKey("items.id"), nullable=False, index=True),
    sa.Column("run_id", sa.String(36)),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("expected", sa.Text),
    sa.Column("actual", sa.Text),
)

quota_usage = sa.Table(
    "quota_usage", metadata,
    sa.Column("user_key", sa.Text, primary_key=True),
    sa.Column("bucket_start", UTCDateTime, primary_key=True),  # whole minutes
    sa.Column("bytes", sa.BigInteger, nullable=False),
)

# Folders this job made (or adopted) on the destination, by path relative to the destination provider's
# root. Workers agree on one folder per path through the primary key instead of a listing: Drive's
# files.list lags behind creates (api-notes Part C §20, rclone#2485), so two workers that look a new
# folder up by name can both miss it and make twins.
dest_folders = sa.Table(
    "dest_folders", metadata,
    sa.Column("job_id", _BigId, sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("folder_id", sa.Text, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
)

workers = sa.Table(
    "workers", metadata,
    sa.Column("worker_id", sa.Text, primary_key=True),
    sa.Column("job_id", _BigId, sa.ForeignKey("jobs.id"), nullable=False, index=True),
    sa.Column("run_id", sa.String(36)),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
    sa.Column("current_item_id", _BigId),
    sa.Column("bytes_done", sa.BigInteger, nullable=False),
    sa.Column("rate_bytes_per_s", sa.Float, nullable=False),
)


def current_version(conn: Connection) -> int | None:
    """The journal's schema version, or None when it has no schema_version table (a fresh database)."""
    if not sa.inspect(conn).has_table("schema_version"):
        return None
    version: Any = conn.scalar(sa.select(sa.func.max(schema_version.c.version)))
    return int(version) if version is not None else 0


def ensure_schema(conn: Connection, label: str, written_by: str) -> int:
    """Create or upgrade the journal's tables inside the caller's write transaction.

    Returns the version found before (None for a fresh journal is reported as 0).
    Raises JournalError for a journal of a newer driveferry, and for a SQLite file that holds other
    tables but no schema_version (not a journal).
    """
    if conn.dialect.name == "postgresql":
        # Workers starting together would race on CREATE TABLE; DDL is transactional on PostgreSQL,
        # so the lock is held until the tables are committed.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
    now = datetime.now(UTC)
    found = current_version(conn)
    if found is None:
        if conn.dialect.name == "sqlite" and sa.inspect(conn).get_table_names():
            raise JournalError(f"{label} is an SQLite database but not a driveferry journal: "
                               "give --journal a new file name")
        metadata.create_all(conn)
        from driveferry.journal import totals
        totals.install(conn)
        conn.execute(sa.insert(schema_version).values(version=SCHEMA_VERSION, applied_at=now,
                                                      written_by=written_by))
        return 0
    if found > SCHEMA_VERSION:
        raise JournalError(f"journal {label} has schema version {found}, newer than this driveferry "
                           f"reads ({SCHEMA_VERSION}): upgrade driveferry on this machine "
                           "(pip install -U driveferry)")
    for version in range(found, SCHEMA_VERSION):
        step = UPGRADES.get(version)
        if step is None:
            raise JournalError(f"journal {label} has schema version {version}, which this driveferry "
                               "cannot upgrade: finish the job with the driveferry that started it")
        step(conn)
        conn.execute(sa.insert(schema_version).values(version=version + 1, applied_at=now,
                                                      written_by=written_by))
    return found


def _v1_to_v2(conn: Connection) -> None:
    """Version 2: items.source_created and the dest_folders table."""
    conn.execute(sa.text("ALTER TABLE items ADD COLUMN source_created "
                         + UTCDateTime().impl.compile(dialect=conn.dialect)))
    dest_folders.create(conn)


def _v2_to_v3(conn: Connection) -> None:
    """Version 3: items.hash_state is gone. Nothing ever read it back: hashlib's digests cannot be
    saved, so a resumed file rebuilds every hash by re-reading its committed prefix from the source.
    An SQLite older than 3.35 cannot drop a column; there it stays, unused and empty."""
    if conn.dialect.name == "sqlite":
        import sqlite3
        if sqlite3.sqlite_version_info < (3, 35):
            return
    conn.execute(sa.text("ALTER TABLE items DROP COLUMN hash_state"))


def _v3_to_v4(conn: Connection) -> None:
    """Version 4: item_totals, kept by triggers (filled here from the items once); the lease-owner
    index holds leased items only; items.created_at is gone (nothing read it; updated_at stays). Each
    keeps bytes out of every item: the journal of a million items stays within 350 bytes an item."""
    from driveferry.journal import totals
    if conn.dialect.name == "sqlite":
        import sqlite3
        if sqlite3.sqlite_version_info < (3, 35):  # DROP COLUMN; the column is NOT NULL, so it must go
            raise JournalError(f"upgrading this journal needs SQLite 3.35 or newer (this Python has "
                               f"{sqlite3.sqlite_version}): finish the job with the driveferry that "
                               "started it, or run on a newer Python")
    conn.execute(sa.text("ALTER TABLE items DROP COLUMN created_at"))
    item_totals.create(conn)
    totals.fill(conn)
    totals.install(conn)
    conn.execute(sa.text("DROP INDEX items_lease_owner"))
    conn.execute(LEASE_INDEX)


UPGRADES[1] = _v1_to_v2
UPGRADES[2] = _v2_to_v3
UPGRADES[3] = _v3_to_v4
