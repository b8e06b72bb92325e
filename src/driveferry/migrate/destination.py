"""The destination side of a migration: folders made once (recorded in the journal), and what already sits there.

`prepare(rel_path, source)` returns the parent folder, the name to write, and an existing copy when the
destination already holds this exact source item, proven by `integrity/proof.prove_copy`: its
provenance names the source id, a destination hash equals the content hash recorded, and a current
source hash equals the source hash recorded (so a source rewritten in place at the same size is copied
again, whatever its provider); the file is then skipped, never uploaded twice. After a new
copy lands, `replaced()` removes older copies of the same source item (the source changed), so Drive,
which allows duplicate names, does not end up with two files.
"""

from __future__ import annotations

import logging
import posixpath
import threading

from driveferry.integrity.proof import Verdict, prove_copy
from driveferry.integrity.provenance import SRC_ID, Provenance
from driveferry.migrate.port import FolderLedger
from driveferry.providers.base import Entry, Kind, Provider
from driveferry.providers.hashing import with_computed

log = logging.getLogger(__name__)


def settled_mkdir(provider: Provider, parent: Entry, name: str, ledger: FolderLedger | None = None) -> Entry:
    """The folder `name` in `parent`, made if missing, agreed on by every worker that makes it at once.

    With a ledger (the journal) the agreement does not depend on listings, which lag behind creates
    on Drive (api-notes Part C §20; rclone#2485): a folder already recorded for the path is used
    once the destination confirms by id that it still exists; otherwise the folder made (or found)
    here is offered to the ledger, the first one recorded wins, and a worker whose own folder lost
    removes it while it is still empty. Destinations that keep one item per name need none of this.

    Without a ledger, two workers starting together both look, find nothing and create; each then
    looks again and keeps the oldest, and removes its own empty loser.
    """
    if not provider.features.duplicate_names:
        return provider.mkdir(parent, name)  # one item per name: find-or-create agrees by itself
    path = posixpath.join(parent.path, name) if parent.path else name
    known = ledger.folder_id(path) if ledger is not None else None
    by_id = provider.features.by_id
    if known is not None and (by_id is None or by_id.live(known)):
        return _folder_entry(known, path, parent)
    made = provider.mkdir(parent, name)
    if ledger is not None:
        # a recorded folder that is gone (deleted on the destination since) is replaced, not trusted
        winner_id = ledger.replace_folder(path, known, made.id) if known else ledger.settle_folder(path, made.id)
        if winner_id == made.id:
            return made
        log.info("another worker made folder %s at the same time; using theirs", path)
        if next(iter(provider.list(made)), None) is None:
            provider.delete(made)
        return _folder_entry(winner_id, path, parent)
    winner = provider.mkdir(parent, name)  # finds, never creates: `made` is there
    if winner.id != made.id:
        log.info("another worker made folder %s at the same time; using theirs", winner.path)
        provider.delete(made)
    return winner


def _folder_entry(folder_id: str, path: str, parent: Entry) -> Entry:
    return Entry(id=folder_id, path=path, name=posixpath.basename(path), kind=Kind.FOLDER, parent_id=parent.id)


def _proven_copy(candidate: Entry, source: Entry) -> bool:
    """Whether `candidate` is a current copy of `source` by the one proof (`integrity/proof.py`)."""
    return copy_verdict(candidate, source).proven


def copy_verdict(candidate: Entry, source: Entry) -> Verdict:
    """The proof of `candidate` (a destination item, hashes reported or computed) as a copy of
    `source` (hashes reported or computed), through the provenance `candidate` carries."""
    prov = Provenance.read(candidate.properties)
    return prove_copy(source_id=source.id, source_size=source.size, source_hashes=source.hashes,
                      dest_size=candidate.size, dest_hashes=candidate.hashes,
                      record_src_id=prov.src_id if prov else None,
                      record_source=prov.source_hashes() if prov else {},
                      record_content=prov.content_hashes() if prov else {})


class Destination:
    """Folder cache and duplicate guard for one destination root (thread-safe).

    Folders are found in this order: this process's cache, the ledger (folders the job recorded,
    possibly by another worker; checked once per process), then made; never by a listing alone, so a folder just made by a
    worker elsewhere is used, not twinned. Files are matched by name in a cached listing of their
    folder and, for an item another worker may have uploaded unrecorded (`fresh`), also by a query
    on their provenance (the destination's property lookup), which needs no full listing.
    """

    def __init__(self, provider: Provider, root: Entry, ledger: FolderLedger | None = None, *,
                 source: Provider | None = None) -> None:
        self.provider = provider
        self.source = source  # computes a source's hash where it reports none (a local source)
        self.root = root
        self.ledger = ledger
        self._folders: dict[str, Entry] = {"": root}
        self._dir_of: dict[str, str] = {root.id: ""}  # folder id -> rel_dir, for replaced()
        self._listings: dict[str, dict[str, list[Entry]]] = {}
        self._lock = threading.Lock()
        self._mk_lock = threading.RLock()  # folder() recurses for parents

    def _remember(self, rel_dir: str, folder: Entry) -> None:
        with self._lock:
            self._folders[rel_dir] = folder
            self._dir_of[folder.id] = rel_dir

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
                self._remember(rel_dir, settled_mkdir(self.provider, parent, name, self.ledger))
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

        `fresh` lists the folder again instead of using this process's cached listing, and also asks
        the destination for files carrying this source's id in their provenance: for an item taken
        over from a dead worker, which may have uploaded it without recording that, while the copy
        is still missing from listings."""
        rel_dir, name = posixpath.split(rel_path)
        parent = self.folder(rel_dir)
        if fresh:
            with self._lock:
                self._listings.pop(rel_dir, None)
        same_name = self._listing(rel_dir, parent).get(name, [])
        candidates = list(same_name)
        lookup = self.provider.features.property_lookup
        if fresh and lookup is not None:
            seen = {c.id for c in candidates}
            found = [e for e in lookup.find_by_property(parent, SRC_ID, source.id) if e.id not in seen]
            if found:
                with self._lock:  # replaced() must see these too
                    self._listings.setdefault(rel_dir, {}).setdefault(name, []).extend(
                        e for e in found if e.name == name)
            candidates += found
        for candidate in candidates:
            prov = Provenance.read(candidate.properties)
            if candidate.name != name or prov is None or prov.src_id != source.id:
                continue
            # a side that reports no hashes (the local filesystem) computes one, so a copy is proven by
            # bytes on both sides, not by its provenance alone; only for our own same-named copies
            candidate = with_computed(self.provider, candidate, prov.content_hashes())
            source = with_computed(self.source, source, prov.source_hashes())
            verdict = copy_verdict(candidate, source)
            if verdict.proven:
                return parent, name, candidate, True
            log.info("%s: the copy on the destination is not current (%s); copying again", rel_path,
                     verdict.reason)
        return parent, name, None, any(c.name == name for c in candidates)

    def replaced(self, parent: Entry, name: str, source: Entry, new: Entry) -> None:
        """Delete older copies of `source` under `parent` now that `new` holds its current content."""
        with self._lock:
            rel_dir = self._dir_of.get(parent.id)
            if rel_dir is None:
                return
            olds = list(self._listings.get(rel_dir, {}).get(name, []))
        for old in olds:
            prov = Provenance.read(old.properties)
            if old.id != new.id and prov is not None and prov.src_id == source.id:
                log.info("removing the outdated copy %s (%s) of %s", old.id, name, source.path)
                self.provider.delete(old)
