"""Plan: walk the source as a stream and decide, per item, copy / skip / cannot copy.

The walk never holds the whole tree: it yields one `Planned` per source item and the journal stores
them in batches. What cannot be copied is reported with a reason instead of being dropped (OneNote
packages, Google Docs the source cannot export or the run does not export, shortcuts, paths the
destination cannot hold). Filters: include/exclude globs on the path relative to the source root, and
a size window.

Naming: with a `Namer` (migrate/names.py) each item's `rel_path` is where it goes on the destination
(the journal's key for it), and `renamed` says why it differs from the source's path. A native
document exported (`export` "office" or "pdf", the source's `Features.exporter`) gets the format's
extension appended: `Plan` -> `Plan.docx`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from driveferry.errors import UserError
from driveferry.globs import check_patterns, matches_any
from driveferry.migrate.names import Namer
from driveferry.providers.base import Entry, Kind, Provider
from driveferry.providers.ops import walk_files

EXPORT_CHOICES = ("office", "pdf", "skip")
_REASONS = {
    Kind.PACKAGE: "OneNote notebook (package): Graph cannot download it as a file; export it from OneNote",
    Kind.NATIVE_DOC: "Google Docs editor file: has no bytes; export is not enabled for this run (--export)",
    Kind.SHORTCUT: "shortcut: points at another item; the target is copied where it lives",
}


@dataclass(frozen=True)
class Naming:
    """How items are named on the destination: the namer (None keeps source paths) and the export
    choice for native documents ("office", "pdf" or "skip")."""

    namer: Namer | None = None
    export: str = "office"
    exporter_of: Provider | None = None  # the source, whose Features.exporter converts native documents


@dataclass(frozen=True)
class Filters:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    min_size: int | None = None
    max_size: int | None = None

    def __post_init__(self) -> None:
        check_patterns(self.include, "--include")
        check_patterns(self.exclude, "--exclude")
        if self.min_size is not None and self.max_size is not None and self.min_size > self.max_size:
            raise UserError(f"--min-size ({self.min_size}) is larger than --max-size ({self.max_size})")

    def wants(self, rel_path: str, size: int | None) -> bool:
        if self.include and not matches_any(rel_path, self.include):
            return False
        if matches_any(rel_path, self.exclude):
            return False
        if size is not None and self.min_size is not None and size < self.min_size:
            return False
        return not (size is not None and self.max_size is not None and size > self.max_size)


@dataclass(frozen=True)
class Planned:
    """One source item and what to do with it. `rel_path` is relative to the source root."""

    entry: Entry
    rel_path: str
    action: str  # "copy" | "unsupported" | "filtered"
    reason: str = ""
    renamed: str = ""  # why rel_path differs from the source's own path ("" when it does not)


def plan(src: Provider, root: Entry, filters: Filters, naming: Naming | None = None, *, checkers: int = 1
         ) -> Iterator[Planned]:
    """Walk `root` (streamed, iterative; `checkers` folders listed at once, ops.walk) and yield a decision
    per file-like item.

    Folders are not yielded: the relay creates destination folders as files need them.
    """
    naming = naming or Naming()
    if root.kind is not Kind.FOLDER:
        yield _decide(root, root.name, filters, naming)
        return
    previous: Entry | None = None
    for found in walk_files(src, root, checkers):
        entry = found.entry
        # providers list same-named items together, the one paths resolve to first (Drive allows
        # duplicates; a path can hold only one of them on the destination)
        if previous is not None and entry.name == previous.name and entry.parent_id == previous.parent_id:
            yield Planned(entry, f"{found.rel_path}#{entry.id}", "unsupported",
                          f"duplicate name on the source: another item named {entry.name!r} in this folder "
                          f"is the one copied (id {previous.id})")
            continue
        previous = entry
        yield _decide(entry, found.rel_path, filters, naming)


def plan_changes(changes: list[Entry], root: Entry, filters: Filters, naming: Naming | None = None
                 ) -> Iterator[Planned]:
    """Decisions for the items a delta listing reported changed under `root` (deleted ones are skipped:
    a migration never deletes on the destination). The namer sees only the changed items here, so a
    case twin of an unchanged sibling is not renamed: the destination refuses it (409 on OneDrive) and
    it is reported as failed, never written over its twin."""
    naming = naming or Naming()
    base = root.path.strip("/")
    for entry in changes:
        path = entry.path.strip("/")
        if entry.kind is Kind.FOLDER or entry.properties.get("deleted") == "true" or not path:
            continue
        if base and not path.startswith(base + "/"):
            continue
        yield _decide(entry, path[len(base) + 1:] if base else path, filters, naming)


def _decide(entry: Entry, rel: str, filters: Filters, naming: Naming) -> Planned:
    target = rel
    if entry.kind is Kind.NATIVE_DOC:
        exporter = naming.exporter_of.features.exporter if naming.exporter_of is not None else None
        fmt = exporter.export_format(entry, naming.export) if exporter is not None and naming.export != "skip" \
            else None
        if fmt is None:
            reason = _REASONS[Kind.NATIVE_DOC] if naming.export == "skip" or exporter is None else \
                f"Google Docs editor file ({entry.mime_type}): the source offers no {naming.export} export for it"
            return Planned(entry, rel, "unsupported", reason)
        target = rel + fmt.extension
    elif entry.kind is not Kind.FILE:
        return Planned(entry, rel, "unsupported", _REASONS.get(entry.kind, f"unsupported kind {entry.kind}"))
    if not filters.wants(rel, entry.size):
        return Planned(entry, rel, "filtered")
    if naming.namer is None:
        return Planned(entry, target, "copy")
    named = naming.namer.name(target, entry.name + (target[len(rel):] if target != rel else ""))
    if named.refused:
        return Planned(entry, named.path, "unsupported", named.refused, named.renamed)
    return Planned(entry, named.path, "copy", renamed=named.renamed)
