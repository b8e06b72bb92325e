"""Rows to records and back: JSON text columns, UTC checks, and the shared base of the store's parts."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from driveferry.errors import JournalError
from driveferry.journal import schema as t
from driveferry.journal.db import Database
from driveferry.journal.records import (
    ErrorRecord,
    ItemRecord,
    ItemState,
    JobRecord,
    LeaseLostError,
    RunRecord,
    WorkerRecord,
)

Clock = Callable[[], datetime]
# Rows are read by column name; their per-column types are not tracked.
AnyRow: TypeAlias = "Row[*tuple[Any, ...]]"


def utc_now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime, name: str) -> datetime:
    """`value` in UTC. Raises ValueError for a naive datetime (a caller bug: its zone is unknown)."""
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    return value.astimezone(UTC)


def dump_json(value: Mapping[str, Any] | None) -> str | None:
    """Canonical JSON text (sorted keys, keys as str) so that equal values compare equal in SQL."""
    if value is None:
        return None
    return json.dumps({str(k): v for k, v in value.items()}, sort_keys=True, separators=(",", ":"))


def load_json(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    return {} if text == "{}" else dict(json.loads(text))  # most hash columns are empty: skip the parser


def to_item(row: AnyRow) -> ItemRecord:
    m = row._mapping
    return ItemRecord(
        id=m["id"], job_id=m["job_id"], path=m["path"], source_id=m["source_id"], kind=m["kind"],
        size_bytes=m["size_bytes"], modified=m["modified"],
        source_hashes=load_json(m["source_hashes"]) or {}, state=ItemState(m["state"]),
        reason=m["reason"], attempts=m["attempts"], dest_id=m["dest_id"],
        dest_hashes=load_json(m["dest_hashes"]) or {}, bytes_done=m["bytes_done"],
        session_token=m["session_token"], committed_offset=m["committed_offset"],
        session_started_at=m["session_started_at"],
        lease_owner=m["lease_owner"], lease_expires_at=m["lease_expires_at"],
        updated_at=m["updated_at"], source_created=m.get("source_created"))


def to_job(row: AnyRow) -> JobRecord:
    m = row._mapping
    return JobRecord(id=m["id"], source_spec=m["source_spec"], dest_spec=m["dest_spec"],
                     created_at=m["created_at"])


def to_run(row: AnyRow) -> RunRecord:
    m = row._mapping
    return RunRecord(id=m["id"], job_id=m["job_id"], worker_id=m["worker_id"], started_at=m["started_at"],
                     finished_at=m["finished_at"], options=load_json(m["options"]) or {},
                     summary=load_json(m["summary"]))


def to_error(row: AnyRow) -> ErrorRecord:
    m = row._mapping
    return ErrorRecord(id=m["id"], item_id=m["item_id"], run_id=m["run_id"], at=m["at"], kind=m["kind"],
                       message=m["message"], expected=m["expected"], actual=m["actual"])


def to_worker(row: AnyRow) -> WorkerRecord:
    m = row._mapping
    return WorkerRecord(worker_id=m["worker_id"], job_id=m["job_id"], run_id=m["run_id"], host=m["host"],
                        pid=m["pid"], heartbeat_at=m["heartbeat_at"], current_item_id=m["current_item_id"],
                        bytes_done=m["bytes_done"], rate_bytes_per_s=float(m["rate_bytes_per_s"]))


class StoreBase:
    """What every part of the store shares: the database and the clock."""

    _db: Database
    _clock: Clock

    def _now(self) -> datetime:
        return aware(self._clock(), "clock()")

    def _lock_item(self, conn: Connection, item_id: int) -> AnyRow:
        """The item's lease columns, row-locked on PostgreSQL (SQLite's BEGIN IMMEDIATE already holds
        the write lock). Raises JournalError when there is no such item."""
        query = (sa.select(t.items.c.id, t.items.c.state, t.items.c.lease_owner, t.items.c.attempts,
                           t.items.c.session_token, t.items.c.dest_id)
                 .where(t.items.c.id == item_id).with_for_update())
        row = conn.execute(query).first()
        if row is None:
            raise JournalError(f"journal {self._db.label}: no item {item_id}")
        return row

    def _require_lease(self, row: AnyRow, worker_id: str) -> None:
        """Raises LeaseLostError unless `worker_id` holds the in-progress item's lease."""
        if row.state != ItemState.IN_PROGRESS or row.lease_owner != worker_id:
            raise LeaseLostError(row.id, worker_id, row.lease_owner, row.state)
