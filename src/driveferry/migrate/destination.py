"""The destination side of a migration: folders made once, and what already sits there.

`prepare(rel_path, source)` returns the parent folder, the name to write, and an existing copy when the
destination already holds this exact source item (its provenance names the source id and its content
hashes match what the provenance promises) so the file is skipped, never uploaded twice. After a new
copy lands, `replaced()` removes older copies of the same source item (the source changed), so Drive,
which allows duplicate names, does not end up with two files.
"""

from __future__ import annotations

import logging
import posixpath
import threading
from dataclasses import replace
from types import MappingProxyType

from driveferry.integrity.hashes import HashType
from driveferry.integrity.provenance import Provenance
from driveferry.providers.base import Entry, Kind, Provider

log = logging.getLogger(__name__)


def settled_mkdir(provider: Provider, parent: Entry, name: str) -> Entry:
    """The folder `name` in `parent`, made if missing, agreed on by every worker that makes it at once.

    Two workers (processes, machines) starting together both look, find nothing and create: Drive
    keeps both folders. Each then looks again and keeps the oldest, which every worker finds (it was
    created first, so it is visible to a look after any later create), and removes its own empty loser.
    """
    made = provider.mkdir(parent, name)
    if not provider.features.duplicate_names:
        return made
    winner = provider.mkdir(parent, name)  # finds, never creates: `made` is there
    if winner.id != made.id:
        log.info("another worker made folder %s at the same time; using theirs", winner.path)
        provider.delete(made)
    return winner


def _proven_copy(candidate: Entry, source: Entry) -> bool:
    prov = Provenance.read(candidate.properties)
    if prov is None or prov.src_id != source.id or candidate.size != source.size:
        return False
    src_qxh = source.hashes.get(HashType.QUICKXOR)
    if src_qxh and prov.src_quickxor != src_qxh:
        return False  # the source changed since this copy was made
    checks = {HashType.MD5: prov.md5, HashType.SHA256: prov.sha256}
    compared = False
    for kind, promised in checks.items():
        reported = candidate.hashes.get(kind)
        if reported and promised:
            if reported != promised:
                return False
            compared = True
    return compared or (src_qxh is not None and candidate.hashes.get(HashType.QUICKXOR) == src_qxh)


class Destination:
    """Folder cache and duplicate guard for one destination root (thread-safe)."""

    def __init__(self, provider: Provider, root: Entry) -> None:
        self.provider = provider
        self.root = root
        self._folders: dict[str, Entry] = {"": root}
        self._listings: dict[str, dict[str, list[Entry]]] = {}
        self._lock = threading.Lock()
        self._mk_lock = threading.RLock()  # folder() recurses for parents

    def folder(self, rel_dir: str) -> Entry:
        """The destination folder for `rel_dir`, created (mkdir -p) the first time it is needed."""
        rel_dir = rel_dir.strip("/")
        with self._lock:
            if rel_dir in self._folders:
                return self._folders[rel_dir]
        with self._mk_lock:  # one creator at a time: two threads must not make two same-named folders
            parent_dir, name = posixpath.split(rel_dir)
            parent = self.folder(parent_dir) if rel_dir not in self._folders else self._folders[rel_dir]
            if rel_dir not in self._folders:
                self._folders[rel_dir] = settled_mkdir(self.provider, parent, name)
            return self._folders[rel_dir]

    def _listing(self, rel_dir: str, folder: Entry) -> dict[str, list[Entry]]:
        with self._lock:
            cached = self._listings.get(rel_dir)
        if cached is not None:
            return cached
        by_name: dict[str, list[Entry]] = {}
        for entry in self.provider.list(folder):
            if entry.kind is Kind.FILE:
                by_name.setdefault(entry.name, []).append(entry)
        with self._lock:
            self._listings[rel_dir] = by_name
        return by_name

    def prepare(self, rel_path: str, source: Entry, fresh: bool = False) -> tuple[Entry, str, Entry | None, bool]:
        """(parent folder, name, proven existing copy or None, whether the name is already taken).

        `fresh` lists the folder again instead of using this process's cached listing: for an item
        taken over from a dead worker, which may have uploaded it without recording that."""
        rel_dir, name = posixpath.split(rel_path)
        parent = self.folder(rel_dir)
        if fresh:
            with self._lock:
                self._listings.pop(rel_dir, None)
        same_name = self._listing(rel_dir, parent).get(name, [])
        for candidate in same_name:
            candidate = self._with_hashes(candidate)
            if _proven_copy(candidate, source):
                return parent, name, candidate, True
        return parent, name, None, bool(same_name)

    def _with_hashes(self, entry: Entry) -> Entry:
        """A destination that reports no hashes (the local filesystem) computes them, so a copy is proven
        by its bytes, not by its provenance alone. Only done for same-named files with provenance."""
        hasher = self.provider.features.content_hasher
        if entry.hashes or hasher is None or Provenance.read(entry.properties) is None:
            return entry
        return replace(entry, hashes=MappingProxyType(hasher.hash_file(entry, (HashType.MD5, HashType.SHA256))))

    def replaced(self, parent: Entry, name: str, source: Entry, new: Entry) -> None:
        """Delete older copies of `source` under `parent` now that `new` holds its current content."""
        rel_dir = next((k for k, v in self._folders.items() if v.id == parent.id), None)
        if rel_dir is None:
            return
        with self._lock:
            olds = list(self._listings.get(rel_dir, {}).get(name, []))
        for old in olds:
            prov = Provenance.read(old.properties)
            if old.id != new.id and prov is not None and prov.src_id == source.id:
                log.info("removing the outdated copy %s (%s) of %s", old.id, name, source.path)
                self.provider.delete(old)
