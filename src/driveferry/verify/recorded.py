"""The destination of a migration as its journal recorded it: folder ids by path, file ids by path.

Drive's files.list is eventually consistent: right after a migration a new folder is not found by a
search for its name, and new items are missing from a listing by parent, while files.get by id sees
them at once (api-notes Part C §20, rclone#2485). So `verify SRC DST` right after `migrate` asks the
journal for the ids it recorded: the destination folder itself (`root`), and any folder or file the
source has and a destination listing lacks (`fill`, for `verify.merge`). An id that is gone or
trashed is not used: the copy is then reported missing, as it is.
"""

from __future__ import annotations

import posixpath

from driveferry.journal.records import ItemState
from driveferry.journal.store import Journal
from driveferry.providers.base import Entry, ItemById, Provider

__all__ = ["RecordedIds"]


class RecordedIds:
    """One job's recorded destination ids, looked up one path at a time (no table is held in memory)."""

    def __init__(self, journal: Journal, job_id: int, provider: Provider, dest_path: str) -> None:
        self.journal = journal
        self.job_id = job_id
        self.by_id: ItemById | None = provider.features.by_id
        self.base = dest_path.strip("/")  # dest_folders paths are from the provider's root
        self.looked_up = 0  # ids asked of the destination (each one files.get)

    def _get(self, item_id: str, parent_path: str) -> Entry | None:
        if self.by_id is None:
            return None
        self.looked_up += 1
        return self.by_id.entry(item_id, parent_path)

    def root(self) -> Entry | None:
        """The destination folder by its recorded id, or None when the job recorded none."""
        folder_id = self.journal.dest_folder(self.job_id, self.base)
        return None if folder_id is None else self._get(folder_id, posixpath.dirname(self.base))

    def fill(self, rel: str, is_folder: bool) -> tuple[list[Entry], list[Entry]]:
        """(files, folders) of the destination at `rel` (relative to the destination folder) that the
        journal recorded, for a path a destination listing did not show."""
        full = posixpath.join(self.base, rel) if self.base else rel
        parent = posixpath.dirname(full)
        if is_folder:
            folder_id = self.journal.dest_folder(self.job_id, full)
            found = self._get(folder_id, parent) if folder_id is not None else None
            return [], [found] if found is not None else []
        item = self.journal.find_item(self.job_id, rel)
        if item is None or item.state is not ItemState.DONE or not item.dest_id:
            return [], []
        entry = self._get(item.dest_id, parent)
        return ([entry] if entry is not None else []), []
