"""Frozen row types of the journal: what the store takes and what it returns.

Values carry their units in their names (`size_bytes`, `committed_offset`, `lease_expires_at`). Times are
timezone-aware UTC. Hashes are lowercase hex keyed by hash-type name ("md5", "quickxor", ...). This module
imports nothing from the rest of driveferry except the error taxonomy.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from driveferry.errors import JournalError


class ItemState(enum.StrEnum):
    """Where one source path stands in a job. Stored as its value."""

    PENDING = "pending"  # to do (again): never started, released, retried or changed at the source
    IN_PROGRESS = "in_progress"  # leased by a worker until lease_expires_at
    DONE = "done"  # on the destination, hashes checked
    SKIPPED = "skipped"  # deliberately not copied (filters, identical copy already there)
    FAILED = "failed"  # gave up: a permanent error or too many attempts; see the item's errors
    UNSUPPORTED = "unsupported"  # cannot be copied at all (OneNote packages, shortcuts, ...)


#: States an item leaves only when the source changes or someone calls `Journal.requeue`.
FINAL_STATES = frozenset({ItemState.DONE, ItemState.SKIPPED, ItemState.FAILED, ItemState.UNSUPPORTED})


class LeaseLostError(JournalError):
    """The worker no longer holds the item's lease (it expired and another worker claimed it, the
    item was released or finished, or the source changed). Stop working on the item; do not retry."""

    def __init__(self, item_id: int, worker_id: str, owner: str | None, state: str) -> None:
        super().__init__(f"item {item_id}: worker {worker_id} lost its lease "
                         f"(now {state}, owner {owner or 'none'}); drop this item")
        self.item_id = item_id
        self.worker_id = worker_id
        self.owner = owner
        self.state = state


class EntryLike(Protocol):
    """What `PlannedItem.from_entry` reads: `providers.base.Entry` fits (the journal does not import it)."""

    @property
    def id(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def size(self) -> int | None: ...
    @property
    def modified(self) -> datetime | None: ...
    @property
    def hashes(self) -> Mapping[Any, str]: ...


@dataclass(frozen=True)
class PlannedItem:
    """One source file or folder as the planner saw it; the input of `Journal.plan_items`."""

    path: str
    source_id: str
    kind: str  # a providers.base.Kind value: "file", "folder", "native_doc", "package", "shortcut"
    size_bytes: int | None = None
    modified: datetime | None = None
    hashes: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None  # the source's creation time, when it reports one

    @classmethod
    def from_entry(cls, entry: EntryLike) -> PlannedItem:
        """The planned item for a provider Entry (hash types become their string names)."""
        return cls(path=entry.path, source_id=entry.id, kind=str(entry.kind), size_bytes=entry.size,
                   modified=entry.modified, hashes={str(k): v for k, v in entry.hashes.items()},
                   created=getattr(entry, "created", None))


@dataclass(frozen=True)
class PlanResult:
    """What one `plan_items` call did: new paths, paths whose source changed (back to pending), the rest."""

    added: int = 0
    changed: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class JobRecord:
    """One migration, identified by its source and destination specs."""

    id: int
    source_spec: str
    dest_spec: str
    created_at: datetime


@dataclass(frozen=True)
class Completion:
    """A finished item for `complete_many`: where it landed and what the destination reported."""

    item_id: int
    dest_id: str
    dest_hashes: Mapping[str, str]
    size_bytes: int


@dataclass(frozen=True)
class RunRecord:
    """One invocation of a command on a job, by one worker."""

    id: str  # uuid4 text
    job_id: int
    worker_id: str
    started_at: datetime
    finished_at: datetime | None
    options: Mapping[str, Any]
    summary: Mapping[str, Any] | None


@dataclass(frozen=True)
class ItemRecord:
    """One source path of a job with its transfer state.

    For an in-flight file, `session_token` is the provider's upload-session token (JSON text),
    `committed_offset` the last offset the destination confirmed. They survive lease expiry and
    release, so the next worker resumes mid-file (re-reading the committed prefix to rebuild the hashes). `dest_id` of a pending item may name an earlier copy to replace.
    """

    id: int
    job_id: int
    path: str
    source_id: str
    kind: str
    size_bytes: int | None
    modified: datetime | None
    source_hashes: Mapping[str, str]
    state: ItemState
    reason: str | None
    attempts: int
    dest_id: str | None
    dest_hashes: Mapping[str, str]
    bytes_done: int
    session_token: str | None
    committed_offset: int | None
    session_started_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    updated_at: datetime
    # set by `claim` on an item whose previous worker's lease expired (it may have died after uploading)
    taken_over: bool = False
    source_created: datetime | None = None


@dataclass(frozen=True)
class ErrorRecord:
    """One failed attempt at an item, with its evidence."""

    id: int
    item_id: int
    run_id: str | None
    at: datetime
    kind: str  # the error class name or a short code, e.g. "IntegrityError", "PermanentError"
    message: str
    expected: str | None
    actual: str | None


@dataclass(frozen=True)
class WorkerRecord:
    """A worker's last heartbeat, for `status` and `workers`."""

    worker_id: str
    job_id: int
    run_id: str | None
    host: str
    pid: int
    heartbeat_at: datetime
    current_item_id: int | None
    bytes_done: int
    rate_bytes_per_s: float


@dataclass(frozen=True)
class StateTotal:
    """Items in one state: how many, their source bytes (unknown sizes count 0) and bytes already sent."""

    items: int = 0
    size_bytes: int = 0
    bytes_done: int = 0


@dataclass(frozen=True)
class UploadUsage:
    """Bytes uploaded as one destination user since a time, and the start of the oldest minute counted.

    The window is counted in whole minutes, rounded so that it never under-counts: a budget check may
    wait up to a minute longer than strictly needed, never less.
    """

    bytes_in_window: int
    oldest: datetime | None
