"""The sharing pass: each source item's permissions, decided and (with `map`) granted on its copy.

The source tree is walked from the migration's root, folders before what they hold. An item's own
permissions are handled on it; an inherited one is handled once, on the highest item of the tree that
lists it (the root, for grants made above the migrated folder), since Drive passes a folder's permissions
on to everything in it. A child that lacks a permission its folder passes on (it stopped inheriting on
the source) would get it on Drive: that is reported as a warning on the child.

`map` lists the copy's permissions before granting and grants only what is missing (a role that covers
the wanted one counts as present), so a resumed or repeated run grants nothing twice. `report` reads the
source (and the journal) only: the destination's sharing is not touched, nor read.
"""

from __future__ import annotations

import logging
import posixpath
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from driveferry.errors import ProviderError, TransientError
from driveferry.migrate.sharing.decide import Grant, covers, decide, describe
from driveferry.migrate.sharing.mapping import SharingMap
from driveferry.providers.base import (
    Entry,
    Kind,
    Permission,
    Provider,
    SharingReader,
    SharingWriter,
    read_permissions,
)

log = logging.getLogger(__name__)
Locate = Callable[[str, Entry], "Entry | str"]  # (rel path, source entry) -> the copy, or why there is none
BATCH = 20  # items whose permissions one request reads (Graph's $batch limit: providers/onedrive/permissions.py)


@dataclass
class ItemSharing:
    """What the pass did for one item (only items with something to say are reported)."""

    path: str
    kind: str
    granted: list[dict[str, Any]] = field(default_factory=list)
    not_granted: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path or "/", "kind": self.kind, "granted": self.granted,
                "not_granted": self.not_granted, "warnings": self.warnings}


@dataclass
class SharingReport:
    mode: str
    items: list[ItemSharing] = field(default_factory=list)
    checked: int = 0  # items whose permissions were read

    def count(self, status: str) -> int:
        return sum(1 for i in self.items for g in i.granted if g["status"] == status)

    @property
    def not_granted(self) -> int:
        return sum(len(i.not_granted) for i in self.items)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "checked": self.checked, "granted": self.count("granted"),
                "present": self.count("present"), "planned": self.count("planned"),
                "not_granted": self.not_granted, "warnings": sum(len(i.warnings) for i in self.items),
                "items": [i.to_json() for i in self.items]}


@dataclass(frozen=True)
class _Todo:
    entry: Entry
    rel: str
    handled: frozenset[str]  # ids of permissions handled on an ancestor
    passed_on: frozenset[str]  # of those, the ones that became grants (Drive passes them down)
    ancestors: frozenset[str] = frozenset()  # ids of the tree's folders above this item


_Task = tuple[Callable[[Any, "SharingReport"], "list[_Task]"], Any]  # (method, its argument)


class SharingPass:
    """One pass over the tree (see module docstring). `mode` is "map" or "report"."""

    def __init__(self, src: Provider, src_root: Entry, dst: Provider, locate: Locate, mapping: SharingMap,
                 *, mode: str, allow_anyone: bool, workers: int = 8) -> None:
        reader = src.features.sharing
        assert isinstance(reader, SharingReader), "the source cannot list permissions"
        self.reader = reader
        self.writer = dst.features.sharing if isinstance(dst.features.sharing, SharingWriter) else None
        assert mode == "report" or self.writer is not None, "map needs a destination that can grant"
        self.src, self.src_root, self.locate = src, src_root, locate
        self.mapping, self.mode, self.allow_anyone = mapping, mode, allow_anyone
        self.workers = max(1, workers)
        self._lock = threading.Lock()
        self._owner_set: frozenset[str] | None = None

    def run(self) -> SharingReport:
        """Visit every item, `workers` tasks at once. A task reads the permissions of up to BATCH items
        of one folder in one request (read_permissions: Graph's `$batch` where the source has it), then
        handles each; a folder among them becomes a task that lists it. An item is handled once its
        folder has been (the folder's decisions are what its children inherit). Items are reported in
        path order."""
        report = SharingReport(self.mode)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sharing")
        root = _Todo(self.src_root, "", frozenset(), frozenset())
        try:
            pending: set[Future[list[_Task]]] = {pool.submit(self._read, [root], report)}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    pending |= {pool.submit(fn, arg, report) for fn, arg in future.result()}
        finally:
            pool.shutdown(cancel_futures=True)
        report.items.sort(key=lambda i: i.path)
        return report

    def _read(self, todos: list[_Todo], report: SharingReport) -> list[_Task]:
        """Read the permissions of `todos` (one folder's items, at most BATCH) and handle each; the
        listing tasks of the folders among them."""
        read = read_permissions(self.reader, [t.entry for t in todos], {})
        tasks: list[_Task] = []
        for todo in todos:
            perms = read.get(todo.entry.id)
            if isinstance(perms, Exception):
                raise perms  # as the single read would have raised it
            handled, passed_on = self._item(todo, perms or [], report)
            if todo.entry.kind is Kind.FOLDER:
                tasks.append((self._list, _Todo(todo.entry, todo.rel, handled, passed_on, todo.ancestors)))
        return tasks

    def _list(self, folder: _Todo, report: SharingReport) -> list[_Task]:
        """List a handled folder; its children, BATCH at a time, as reading tasks."""
        children = []
        for child in self.src.list(folder.entry):
            if child.properties.get("deleted") == "true":
                continue
            rel = posixpath.join(folder.rel, child.name) if folder.rel else child.name
            children.append(_Todo(child, rel, folder.handled, folder.passed_on,
                                  folder.ancestors | {folder.entry.id}))
        return [(self._read, children[i:i + BATCH]) for i in range(0, len(children), BATCH)]

    def _item(self, todo: _Todo, perms: list[Permission], report: SharingReport,
              ) -> tuple[frozenset[str], frozenset[str]]:
        """Handle one item whose permissions were read; returns (handled, passed_on) for its children."""
        with self._lock:
            report.checked += 1
        item = ItemSharing(todo.rel, str(todo.entry.kind))
        ids = {p.id for p in perms}
        lost = todo.passed_on - ids
        if lost and not any(p.inherited_from in todo.ancestors for p in perms):
            item.warnings.append(f"on the source this item does not have {len(lost)} permission(s) of its folder "
                                 "(it stopped inheriting); on Drive it gets them from the folder")
        # an inherited permission is the ancestor's, handled there when that ancestor is in the tree (its
        # id may differ from the ancestor's copy: matched by either)
        mine = [p for p in perms if p.inherited_from is None
                or (p.id not in todo.handled and p.inherited_from not in todo.ancestors)]
        granted_ids: set[str] = set()
        wanted: list[tuple[Permission, Grant]] = []
        for p in mine:
            d = decide(p, self.mapping, allow_anyone=self.allow_anyone)
            item.not_granted += [{"source": describe(p), "reason": r} for r in d.refused]
            wanted += [(p, g) for g in d.grants]
            if d.grants:
                granted_ids.add(p.id)
        if wanted:
            self._grant(todo, item, wanted)
        if item.granted or item.not_granted or item.warnings:
            with self._lock:
                report.items.append(item)
        return todo.handled | {p.id for p in mine}, todo.passed_on | granted_ids

    def _owners(self) -> frozenset[str]:
        """The destination folder's owners (the migrating account): they own every copy, so a grant to
        them is present without listing each copy's permissions."""
        with self._lock:
            if self._owner_set is None:
                root = self.locate("", self.src_root)
                listed = self.writer.list_permissions(root) if self.writer and not isinstance(root, str) else []
                self._owner_set = frozenset(e.address for e in listed if e.kind == "user" and e.role == "owner")
            return self._owner_set

    def _grant(self, todo: _Todo, item: ItemSharing, wanted: list[tuple[Permission, Grant]]) -> None:
        copy = self.locate(todo.rel, todo.entry)
        if isinstance(copy, str):
            item.not_granted += [{"source": describe(p), "reason": copy} for p, _ in wanted]
            return
        # widest first, so a narrower grant to the same principal is covered by it
        wanted.sort(key=lambda pg: -_rank(pg[1].role))
        mapped = self.mode == "map" and self.writer is not None
        owners = self._owners() if mapped else frozenset()
        if mapped and all(g.kind == "user" and g.address in owners for _, g in wanted):
            existing: list[Permission] = []  # only the destination's owner: nothing to look up
        else:
            existing = self.writer.list_permissions(copy) if mapped and self.writer else []
        held = {(e.kind, e.address): e.role for e in existing} | {("user", o): "owner" for o in owners}
        for p, g in wanted:
            key = (g.kind, g.address)
            entry: dict[str, Any] = {"source": describe(p), "grant": g.to_json()}
            if key in held and covers(held[key], g.role):
                item.granted.append({**entry, "status": "present"})
                continue
            if self.mode != "map" or self.writer is None:
                held[key] = g.role
                item.granted.append({**entry, "status": "planned"})
                continue
            try:
                made = self.writer.add_permission(copy, g.permission())
            except TransientError:
                raise
            except ProviderError as exc:
                item.not_granted.append({"source": describe(p), "reason": f"Drive refused the grant: {exc}",
                                         "grant": g.to_json()})
                continue
            held[key] = made.role or g.role
            item.granted.append({**entry, "status": "granted"})


def _rank(role: str) -> int:
    from driveferry.migrate.sharing.decide import DRIVE_ORDER
    return DRIVE_ORDER.index(role) if role in DRIVE_ORDER else -1
