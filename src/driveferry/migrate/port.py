"""What `migrate` needs from the journal, as a narrow interface (the journal package implements it).

Keeping the port here lets the worker loop be read (and tested) without the storage details.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from driveferry.integrity.hashes import HashType
from driveferry.providers.base import Entry


@dataclass(frozen=True)
class ClaimedItem:
    """An item this worker holds a lease on, with what is needed to continue it."""

    item_id: int
    rel_path: str
    entry: Entry  # the source item as planned
    session_token: str | None
    committed_offset: int
    attempts: int
    # Another worker held it and its lease expired (it died): it may have finished the upload without
    # recording it, so the destination folder must be looked at afresh, not from a cached listing.
    taken_over: bool = False


@dataclass(frozen=True)
class Finished:
    """A file done on the destination (copied, or found there already), to be recorded in the journal."""

    item_id: int
    dest_id: str
    dest_hashes: Mapping[HashType, str]
    nbytes: int  # the copy's whole size (the journal's bytes_done), not what this run sent of it
    # which of dest_hashes were taken from the destination's answer, not streamed (migrate/hash_set.py)
    from_dest: frozenset[HashType] = frozenset()


class JournalPort(Protocol):
    def claim(self, worker_id: str, lease_s: float, limit: int, max_bytes: int | None = None) -> Sequence[ClaimedItem]:
        """Lease up to `limit` files, in order, while their sizes add up to at most `max_bytes` (the
        first is always taken)."""
        ...

    def renew(self, worker_id: str, item_ids: Sequence[int], lease_s: float) -> None: ...

    def checkpoint(self, item_id: int, worker_id: str, token: str, offset: int) -> bool:
        """Record progress; False when the worker no longer holds the lease."""
        ...

    def checkpoint_many(self, worker_id: str, points: Sequence[tuple[int, str | None, int]]) -> set[int]:
        """Record (item id, token, offset) of several items in one transaction; the ids whose lease held."""
        ...

    def complete(self, done: Sequence[Finished]) -> None:
        """Mark items done, in one transaction."""
        ...

    def fail(self, item_id: int, kind: str, message: str, expected: str | None, actual: str | None,
             retryable: bool, reset_session: bool = False) -> bool:
        """Record a failure with its evidence and release the item (pending again if retryable and
        attempts remain). True when the item is now finally failed."""
        ...

    def heartbeat(self, bytes_done: int, rate: float, current: int | None) -> None: ...

    def release(self, worker_id: str) -> None: ...

    def unfinished_elsewhere(self, worker_id: str) -> bool:
        """True while other workers hold unexpired leases on unfinished items."""
        ...

    def claimable(self) -> bool:
        """True while files are left that a claim could take (pending, or under an expired lease): a
        claim that found none then met a concurrent claim's locks, and is tried again shortly."""
        ...


class FolderLedger(Protocol):
    """Where the destination folders this job made are recorded (the journal), so that workers and
    re-runs agree on one folder per path without listing the destination: Drive's listings lag
    behind creates (api-notes Part C §20). Paths are relative to the destination provider's root."""

    def folder_id(self, path: str) -> str | None:
        """The folder recorded for `path`, or None."""
        ...

    def settle_folder(self, path: str, folder_id: str) -> str:
        """Record `folder_id` for `path` unless another is recorded already; returns the recorded one."""
        ...

    def replace_folder(self, path: str, old_id: str, new_id: str) -> str:
        """Record `new_id` for `path` in place of `old_id` (gone from the destination) unless another
        worker replaced it first; returns the recorded one."""
        ...
