"""migrate's `--permissions map|report|skip`: the options, checked before anything is touched, and the
pass run after the copy, locating each item's copy through the job's journal.

`report` (the default) reads each item's permissions and reports what `map` would grant; `map` grants it;
`skip` reads nothing. A run with a source that cannot list permissions, or a destination that cannot
hold them, reports that once instead (and `map` then refuses to start: exit 2).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from driveferry.errors import NotFoundError, UserError
from driveferry.migrate.sharing.mapping import SharingMap, load_map
from driveferry.migrate.sharing.walk import SharingPass, SharingReport
from driveferry.providers.base import Entry, Kind, Provider, SharingReader, SharingWriter

if TYPE_CHECKING:
    from driveferry.journal.store import Journal

MODES = ("map", "report", "skip")


@dataclass(frozen=True)
class SharingOptions:
    mode: str = "report"
    mapping: SharingMap = SharingMap()
    allow_anyone_links: bool = False


def sharing_options(mode: str | None, map_file: str | None, allow_anyone_links: bool) -> SharingOptions:
    """The options from migrate's flags; UserError (exit 2, nothing touched) for a bad mode, `map`
    without a map file, or a map file that is missing or malformed."""
    mode = mode or "report"
    if mode not in MODES:
        raise UserError(f"--permissions must be map, report or skip, got {mode!r}")
    if mode == "map" and not map_file:
        raise UserError("--permissions map needs --sharing-map FILE (see configs/sharing-map.example.csv)")
    mapping = load_map(map_file) if map_file and mode != "skip" else SharingMap()
    return SharingOptions(mode, mapping, allow_anyone_links)


def check_capable(options: SharingOptions, src: Provider, dst: Provider) -> str | None:
    """None when the pass can run; else why not (a UserError for `map`, which asks for it)."""
    if options.mode == "skip":
        return "skipped (--permissions skip)"
    why = None
    if not isinstance(src.features.sharing, SharingReader):
        why = f"{src.name} cannot list permissions"
    elif not isinstance(dst.features.sharing, SharingWriter):
        why = f"{dst.name} cannot hold permissions"
    if why and options.mode == "map":
        raise UserError(f"--permissions map: {why}; use --permissions skip")
    return why


class JournalLocator:
    """Where each source item's copy is: the destination folder for the root, the job's recorded folder
    (or a lookup by path) for a folder, the journal's finished copy for a file."""

    def __init__(self, journal: Journal, source_spec: str, dest_spec: str, dst: Provider, dst_root: Entry) -> None:
        job = journal.find_job(source_spec, dest_spec)
        self.journal, self.job_id = journal, (job.id if job is not None else None)
        self.dst, self.dst_root = dst, dst_root
        self.folders = journal.dest_folders(self.job_id) if self.job_id is not None else {}

    def __call__(self, rel: str, source: Entry) -> Entry | str:
        if not rel:
            return self.dst_root
        path = posixpath.join(self.dst_root.path, rel) if self.dst_root.path else rel
        if source.kind is Kind.FOLDER:
            known = self.folders.get(path)
            if known:
                return Entry(id=known, path=path, name=posixpath.basename(path), kind=Kind.FOLDER)
            try:
                return self.dst.stat(path)
            except NotFoundError:
                return "the folder is not on the destination (no file in it was copied)"
        from driveferry.journal.records import ItemState
        item = self.journal.find_item(self.job_id, rel) if self.job_id is not None else None
        if item is None or item.source_id != source.id:
            return "not part of this migration's copies (filtered, or not planned)"
        if item.state not in (ItemState.DONE, ItemState.SKIPPED) or not item.dest_id:
            return f"not copied yet (state {item.state.value}); run migrate again to continue"
        return Entry(id=item.dest_id, path=path, name=posixpath.basename(path), kind=Kind(item.kind))


def run_sharing(options: SharingOptions, src: Provider, src_path: str, dst: Provider, dst_path: str,
                journal: Journal, source_spec: str, dest_spec: str, *, workers: int = 8) -> dict[str, Any]:
    """The pass (see module docstring), `workers` items at once; the report's `sharing` section."""
    why = check_capable(options, src, dst)
    if why is not None:
        return {"mode": options.mode, "not_run": why}
    src_root, dst_root = src.stat(src_path), _dest_root(journal, source_spec, dest_spec, dst, dst_path)
    locate = JournalLocator(journal, source_spec, dest_spec, dst, dst_root)
    report: SharingReport = SharingPass(src, src_root, dst, locate, options.mapping, mode=options.mode,
                                        allow_anyone=options.allow_anyone_links, workers=workers).run()
    return report.to_json()


def _dest_root(journal: Journal, source_spec: str, dest_spec: str, dst: Provider, dst_path: str) -> Entry:
    """The destination folder the migration recorded for `dst_path`, by id, else a lookup by path. A
    folder made minutes ago is not yet found by path on Drive (search lags behind creates: api-notes
    Part C §20), so the journal's record comes first."""
    rel = dst_path.strip("/")
    job = journal.find_job(source_spec, dest_spec) if rel else None
    known = journal.dest_folder(job.id, rel) if job is not None else None
    if known:
        return Entry(id=known, path=rel, name=posixpath.basename(rel), kind=Kind.FOLDER)
    return dst.stat(dst_path)
